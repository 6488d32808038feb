#include "publisher.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

#include "http.hpp"
#include "progress_line.hpp"

namespace loadgen {

std::atomic<bool> g_interrupted{false};

namespace {

using loadtest::PlannedEvent;
using nlohmann::json;

struct Request {
  std::vector<PlannedEvent> events;
  int attempts = 0;
  Clock::time_point not_before;
};

struct Connection {
  int fd = -1;
  std::unique_ptr<Request> request;
  std::string out;
  std::size_t out_offset = 0;
  std::string in;
  Clock::time_point sent_at;
  bool writing = false;  // registered for EPOLLOUT
};

class Publisher {
 public:
  Publisher(const Options& o, loadtest::Workload& workload, const StatsSampler& sampler,
            Clock::time_point start, AcceptedCallback on_accepted)
      : o_(o),
        workload_(workload),
        on_accepted_(std::move(on_accepted)),
        connections_(o.connections),
        start_(start),
        progress_(o, sampler, start) {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) throw std::runtime_error("epoll_create1 failed");
  }
  ~Publisher() {
    for (auto& c : connections_) close_connection(c);
    ::close(epoll_);
  }
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  /// Runs until every planned event has an answer (or was given up on).
  void run() {
    std::vector<epoll_event> events(std::max<std::size_t>(64, connections_.size()));
    for (;;) {
      const auto now = Clock::now();
      expire_requests(now);
      for (std::size_t i = 0; i < connections_.size(); ++i) {
        if (!connections_[i].request && !dispatch(i, now)) break;
      }
      if (now >= progress_.next()) progress_.print(now, totals_, dispatched_);
      if (finished()) break;
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()),
                                 wait_ms(Clock::now()));
      if (n < 0 && errno != EINTR) throw std::runtime_error("epoll_wait failed");
      for (int k = 0; k < n; ++k)
        on_event(events[static_cast<std::size_t>(k)].data.u32,
                 events[static_cast<std::size_t>(k)].events);
    }
    end_ = Clock::now();
  }

  const Totals& totals() const { return totals_; }
  Clock::time_point first_send() const { return first_send_; }
  Clock::time_point end() const { return end_; }
  std::uint64_t events_dispatched() const { return dispatched_; }

 private:
  bool generation_over(Clock::time_point now) const {
    return plan_done_ || g_interrupted.load() ||
           (o_.duration.count() > 0 && now - start_ >= o_.duration);
  }

  bool finished() const {
    if (!plan_done_ && !generation_over(Clock::now())) return false;
    if (!retries_.empty()) return false;
    return std::none_of(connections_.begin(), connections_.end(),
                        [](const Connection& c) { return c.request != nullptr; });
  }

  int wait_ms(Clock::time_point now) const {
    auto wake = std::min(progress_.next(), now + std::chrono::milliseconds(50));
    if (o_.rate > 0) wake = std::min(wake, std::max(now, next_rate_slot_));
    for (const auto& r : retries_) wake = std::min(wake, std::max(now, r->not_before));
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count();
    return static_cast<int>(std::max<std::int64_t>(ms, 0));
  }

  std::unique_ptr<Request> next_request(Clock::time_point now) {
    for (auto it = retries_.begin(); it != retries_.end(); ++it) {
      if ((*it)->not_before <= now) {
        auto request = std::move(*it);
        retries_.erase(it);
        ++totals_.retries;
        return request;
      }
    }
    if (generation_over(now)) return nullptr;
    if (o_.rate > 0) {
      next_rate_slot_ =
          start_ + std::chrono::duration_cast<Clock::duration>(
                       std::chrono::duration<double>(static_cast<double>(dispatched_) / o_.rate));
      if (now < next_rate_slot_) return nullptr;
    }
    auto request = std::make_unique<Request>();
    if (!o_.get_path.empty()) return request;  // a GET carries no events
    if (!workload_.next_batch(request->events)) {
      plan_done_ = true;
      return nullptr;
    }
    dispatched_ += request->events.size();
    return request;
  }

  bool dispatch(std::size_t index, Clock::time_point now) {
    auto request = next_request(now);
    if (!request) return false;
    Connection& c = connections_[index];
    if (c.fd < 0) {
      c.fd = loadtest::connect_loopback(o_.port, true);
      if (c.fd < 0) {
        ++totals_.connection_errors;
        note_error("cannot connect to 127.0.0.1:" + std::to_string(o_.port));
        ++request->attempts;  // nothing was sent: a retry is not ambiguous
        retry_later(std::move(request), now, "");
        return false;
      }
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.u32 = static_cast<std::uint32_t>(index);
      ::epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
    }
    if (o_.get_path.empty()) {
      const std::string body = loadtest::encode_body(workload_, request->events, o_.coding);
      c.out = loadtest::request_head("POST", o_.coding.path(), o_.port, o_.authorization,
                                     body.size(), o_.keep_alive_header, o_.coding) +
              body;
    } else {
      c.out = loadtest::request_head("GET", o_.get_path, o_.port, o_.authorization, 0,
                                     o_.keep_alive_header);
    }
    c.out_offset = 0;
    c.sent_at = now;
    if (totals_.requests == 0) first_send_ = now;
    ++totals_.requests;
    totals_.bytes_sent += c.out.size();
    ++request->attempts;
    c.request = std::move(request);
    flush(index);
    return true;
  }

  void flush(std::size_t index) {
    Connection& c = connections_[index];
    while (c.out_offset < c.out.size()) {
      const ssize_t n =
          ::send(c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_offset += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      fail(index, "send failed");
      return;
    }
    const bool want_write = c.out_offset < c.out.size();
    if (want_write != c.writing) {
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP | (want_write ? EPOLLOUT : 0u);
      ev.data.u32 = static_cast<std::uint32_t>(index);
      ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
      c.writing = want_write;
    }
  }

  void on_event(std::uint32_t index, std::uint32_t flags) {
    Connection& c = connections_[index];
    if (c.fd < 0) return;
    if ((flags & EPOLLOUT) != 0) flush(index);
    if (c.fd < 0 || (flags & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) return;
    bool closed = false;
    char chunk[65536];
    for (;;) {
      const ssize_t n = ::recv(c.fd, chunk, sizeof chunk, 0);
      if (n > 0) {
        c.in.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      closed = true;
      break;
    }
    for (;;) {
      loadtest::HttpResponse response;
      std::string error;
      const auto r = loadtest::take_response(c.in, response, &error);
      if (r == loadtest::ParseResult::kIncomplete) break;
      if (r == loadtest::ParseResult::kError || !c.request) {
        note_error(r == loadtest::ParseResult::kError ? error : "response without a request");
        fail(index, "protocol error");
        return;
      }
      on_response(index, response);
      if (c.fd < 0) return;
    }
    if (closed) fail(index, "connection closed");
  }

  void on_response(std::size_t index, const loadtest::HttpResponse& response) {
    Connection& c = connections_[index];
    const auto now = Clock::now();
    totals_.latencies_us.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(now - c.sent_at).count(),
        UINT32_MAX)));
    ++totals_.responses;
    ++totals_.status_counts[response.status];
    auto request = std::move(c.request);
    if (response.close) close_connection(c);

    if (!o_.get_path.empty()) {
      if (response.status != 200) {
        ++totals_.permanent;
        note_error("HTTP " + std::to_string(response.status) + ": " + response.body.substr(0, 300));
      }
      return;
    }
    if (const auto protocol = o_.coding.protocol();
        protocol && response.status != 429 && response.status < 500) {
      std::string error;  // a shipper protocol's answer; 429 and 5xx are retried as any
      auto again = std::make_unique<Request>();
      again->attempts = request->attempts;
      again->events = count_protocol_answer(*protocol, request->events, response.status,
                                            response.body, totals_, on_accepted_, now, &error);
      if (!error.empty()) note_error(error);
      if (!again->events.empty()) retry_later(std::move(again), now, response.retry_after);
      return;
    }
    json body = json::parse(response.body, nullptr, false);
    json results;  // null unless the answer has per-event results
    if (body.is_object() && body.contains("results") && body["results"].is_array()) {
      results = std::move(body["results"]);
    }
    const bool has_results = results.is_array();
    if (response.status == 200 && has_results) {
      count_results(*request, results, nullptr, now);
      return;
    }
    if (response.status == 429 || (response.status >= 500 && response.status != 501)) {
      if (response.status == 503 && has_results) {
        // Retry only the events that failed: the accepted ones must not come
        // back as duplicates, or the exact check could not hold.
        auto again = std::make_unique<Request>();
        again->attempts = request->attempts;
        count_results(*request, results, &again->events, now);
        totals_.ambiguous += again->events.size();
        if (!again->events.empty()) retry_later(std::move(again), now, response.retry_after);
        return;
      }
      // A 429 is refused before any publishing; anything else may have
      // published part of the request.
      if (response.status != 429) totals_.ambiguous += request->events.size();
      retry_later(std::move(request), now, response.retry_after);
      return;
    }
    totals_.permanent += request->events.size();
    note_error("HTTP " + std::to_string(response.status) + ": " + response.body.substr(0, 300));
  }

  // Adds the per-event results of an answer (which arrived at `answered`);
  // collects the failed ones.
  void count_results(const Request& request, const json& results, std::vector<PlannedEvent>* failed,
                     Clock::time_point answered) {
    std::size_t seen = 0;
    for (const auto& r : results) {
      if (!r.is_object() || !r.contains("status") || !r.contains("index")) continue;
      const json& status_json = r.at("status");
      const json& index_json = r.at("index");
      if (!status_json.is_string() || !index_json.is_number_unsigned()) continue;
      const auto& status = status_json.get_ref<const std::string&>();
      const auto i = index_json.get<std::size_t>();
      if (i >= request.events.size()) continue;
      ++seen;
      if (status == "accepted") {
        ++totals_.accepted;
        if (on_accepted_) on_accepted_(request.events[i].key, answered);
      } else if (status == "duplicate") {
        ++totals_.duplicates;
      } else if (status == "failed") {
        ++totals_.failed;
        if (failed != nullptr) failed->push_back(request.events[i]);
      } else {
        ++totals_.rejected;
        note_error("rejected event: " + r.dump());
      }
    }
    if (seen != request.events.size()) {
      totals_.permanent += request.events.size() - seen;
      note_error("an answer had " + std::to_string(seen) + " results for " +
                 std::to_string(request.events.size()) + " events");
    }
  }

  void retry_later(std::unique_ptr<Request> request, Clock::time_point now,
                   const std::string& retry_after) {
    if (request->attempts > o_.max_retries) {
      totals_.gave_up += request->events.size();
      note_error("gave up on a request after " + std::to_string(request->attempts) + " attempts");
      return;
    }
    std::chrono::milliseconds delay{std::min(2000, 50 << std::min(request->attempts, 6))};
    if (!retry_after.empty()) {
      delay = std::chrono::milliseconds(
          std::clamp(static_cast<int>(std::strtol(retry_after.c_str(), nullptr, 10)), 0, 5) * 1000);
    }
    request->not_before = now + delay;
    retries_.push_back(std::move(request));
  }

  void fail(std::size_t index, const char* why) {
    Connection& c = connections_[index];
    auto request = std::move(c.request);
    close_connection(c);
    if (!request) return;
    ++totals_.connection_errors;
    note_error(std::string(why) + " before an answer");
    totals_.ambiguous += request->events.size();
    retry_later(std::move(request), Clock::now(), "");
  }

  void expire_requests(Clock::time_point now) {
    for (std::size_t i = 0; i < connections_.size(); ++i) {
      const Connection& c = connections_[i];
      if (c.request && now - c.sent_at > o_.request_timeout) {
        ++totals_.timeouts;
        fail(i, "request timed out");
      }
    }
  }

  void close_connection(Connection& c) {
    if (c.fd >= 0) ::close(c.fd);  // also leaves the epoll set
    c.fd = -1;
    c.in.clear();
    c.out.clear();
    c.writing = false;
  }

  void note_error(const std::string& what) {
    if (totals_.first_error.empty()) {
      totals_.first_error = what;
      std::cerr << "loadgen: " << what << "\n";
    }
  }

  const Options& o_;
  loadtest::Workload& workload_;
  AcceptedCallback on_accepted_;
  std::vector<Connection> connections_;
  std::deque<std::unique_ptr<Request>> retries_;
  int epoll_ = -1;
  bool plan_done_ = false;
  std::uint64_t dispatched_ = 0;
  Totals totals_;
  Clock::time_point start_, first_send_, end_, next_rate_slot_;
  ProgressLine progress_;
};

}  // namespace

PublishResult publish(const Options& o, loadtest::Workload& workload, StatsSampler& sampler,
                      Clock::time_point start, AcceptedCallback on_accepted) {
  Publisher publisher(o, workload, sampler, start, std::move(on_accepted));
  publisher.run();
  return {publisher.totals(), publisher.first_send(), publisher.end()};
}

}  // namespace loadgen
