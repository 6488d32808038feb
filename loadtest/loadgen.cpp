// loadgen: a publisher simulator for the pipeline. Publishes a planned set of
// events (with duplicates within and across requests) over keep-alive
// connections, reports throughput and latency, then waits until the pipeline
// has stored everything and checks /stats against what it sent, exactly.
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "flags.hpp"
#include "http.hpp"
#include "workload.hpp"
#include "workload_flags.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using loadtest::PlannedEvent;

std::atomic<bool> g_interrupted{false};

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// 1234567 -> "1,234,567"
std::string grouped(std::uint64_t n) {
  std::string digits = std::to_string(n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) {
    digits.insert(static_cast<std::size_t>(i), ",");
  }
  return digits;
}

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

struct Options {
  std::uint16_t port = 0;
  std::string url;
  std::string authorization;
  loadtest::WorkloadConfig workload;
  std::size_t connections = 8;
  double rate = 0;  // events per second, 0 = unbounded
  std::chrono::milliseconds duration{0};
  std::chrono::milliseconds drain_timeout{120000};
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds sample_interval{1000};
  int max_retries = 20;
  bool verify = true;
  bool quiet = false;
  std::string json_path;
};

std::optional<Options> read_options(int argc, const char* const* argv) {
  loadtest::Flags flags("loadgen",
                        "Publishes events to ingest's POST /publish and checks that the pipeline "
                        "stored them exactly once (GET /stats).");
  flags.add("url", "http://127.0.0.1:8080", "ingest's base URL (loopback only)");
  loadtest::add_workload_flags(flags, "20000");
  flags.add("duration", "0s", "stop publishing after this long (0 = when --events are sent; with --events=0, no event limit)");
  flags.add("connections", "8", "concurrent keep-alive connections");
  flags.add("rate", "0", "target events per second over all connections (0 = unbounded)");
  flags.add("run-id", "", "prefix of every event_id (default: new for each run)");
  flags.add("token", "", "bearer token for ingest's API (INGEST_API_TOKENS)");
  flags.add("max-retries", "20", "retries of a request without answer, or 503/429, before giving up");
  flags.add("request-timeout", "30s", "time to wait for one response");
  flags.add("timeout", "120s", "time to wait for the pipeline to store everything");
  flags.add("sample-interval", "1s", "how often to sample GET /stats while publishing (0 = never)");
  flags.add("no-verify", "false", "skip waiting for the pipeline and checking /stats");
  flags.add("quiet", "false", "no progress lines");
  if (!flags.parse(argc, argv)) return std::nullopt;

  Options o;
  o.url = flags.str("url");
  o.port = loadtest::loopback_port(o.url);
  if (!flags.str("token").empty()) o.authorization = "Bearer " + flags.str("token");
  o.workload = loadtest::workload_from_flags(flags);
  auto& w = o.workload;
  w.run_id = flags.str("run-id");
  if (w.run_id.empty()) {
    const auto now = std::chrono::system_clock::now().time_since_epoch().count();
    char buf[32];
    std::snprintf(buf, sizeof buf, "r%08llx",
                  static_cast<unsigned long long>(now ^ (static_cast<long long>(::getpid()) << 20)) &
                      0xffffffffULL);
    w.run_id = buf;
  }
  o.connections = static_cast<std::size_t>(flags.integer("connections", 1, 4096));
  o.rate = flags.number("rate", 0, 1e9);
  o.duration = flags.duration("duration");
  o.drain_timeout = flags.duration("timeout");
  o.request_timeout = flags.duration("request-timeout");
  o.sample_interval = flags.duration("sample-interval");
  o.max_retries = static_cast<int>(flags.integer("max-retries", 0, 1000));
  o.verify = !flags.boolean("no-verify");
  o.quiet = flags.boolean("quiet");
  o.json_path = flags.str("json");
  if (w.events == 0 && o.duration.count() == 0) {
    throw std::invalid_argument("--events=0 needs a --duration");
  }
  return o;
}

// ---------------------------------------------------------------- /stats

struct Stats {
  std::int64_t received = 0;
  std::int64_t unique_processed = 0;
  std::int64_t duplicate_dropped = 0;
  std::int64_t duplicates_broker = 0;
  std::int64_t duplicates_database = 0;
  std::int64_t dead_lettered = 0;
  std::int64_t pending = 0;

  bool balanced() const { return received == unique_processed + duplicate_dropped + dead_lettered; }
  Stats minus(const Stats& b) const {
    return {received - b.received,
            unique_processed - b.unique_processed,
            duplicate_dropped - b.duplicate_dropped,
            duplicates_broker - b.duplicates_broker,
            duplicates_database - b.duplicates_database,
            dead_lettered - b.dead_lettered,
            pending};
  }
  json to_json() const {
    return {{"received", received},
            {"unique_processed", unique_processed},
            {"duplicate_dropped", duplicate_dropped},
            {"duplicates_by_stage", {{"broker", duplicates_broker}, {"database", duplicates_database}}},
            {"dead_lettered", dead_lettered},
            {"pending", pending}};
  }
};

std::optional<Stats> read_stats(loadtest::BlockingClient& client) {
  const loadtest::HttpResponse r = client.get("/stats");
  if (r.status != 200) return std::nullopt;
  const json j = json::parse(r.body, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  Stats s;
  s.received = j.value("received", std::int64_t{0});
  s.unique_processed = j.value("unique_processed", std::int64_t{0});
  s.duplicate_dropped = j.value("duplicate_dropped", std::int64_t{0});
  s.dead_lettered = j.value("dead_lettered", std::int64_t{0});
  s.pending = j.value("pending", std::int64_t{0});
  if (const auto it = j.find("duplicates_by_stage"); it != j.end() && it->is_object()) {
    s.duplicates_broker = it->value("broker", std::int64_t{0});
    s.duplicates_database = it->value("database", std::int64_t{0});
  }
  return s;
}

/// Samples /stats on its own thread while the run goes on: the consumer lag
/// and the processed counters over time.
class StatsSampler {
 public:
  StatsSampler(const Options& o, Clock::time_point start) : start_(start) {
    if (o.sample_interval.count() == 0) return;
    thread_ = std::thread([this, o] {
      loadtest::BlockingClient client(o.port, o.authorization, 5000);
      auto next = Clock::now();
      while (!stop_.load()) {
        if (const auto s = read_stats(client)) {
          std::lock_guard<std::mutex> lock(mutex_);
          samples_.push_back({{"t", std::round(seconds_between(start_, Clock::now()) * 1000) / 1000},
                              {"received", s->received},
                              {"unique_processed", s->unique_processed},
                              {"duplicate_dropped", s->duplicate_dropped},
                              {"pending", s->pending}});
          last_pending_ = s->pending;
        }
        next += o.sample_interval;
        while (!stop_.load() && Clock::now() < next) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      }
    });
  }
  ~StatsSampler() { stop(); }
  StatsSampler(const StatsSampler&) = delete;
  StatsSampler& operator=(const StatsSampler&) = delete;

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::int64_t last_pending() const { return last_pending_.load(); }
  json samples() {
    std::lock_guard<std::mutex> lock(mutex_);
    return samples_;
  }

 private:
  Clock::time_point start_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> last_pending_{-1};
  std::mutex mutex_;
  json samples_ = json::array();
};

// ---------------------------------------------------------------- publishing

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

struct Totals {
  std::uint64_t requests = 0;  // attempts sent, retries included
  std::uint64_t retries = 0;
  std::uint64_t responses = 0;
  std::map<int, std::uint64_t> status_counts;
  std::uint64_t connection_errors = 0;  // refused, reset or closed without an answer
  std::uint64_t timeouts = 0;
  std::uint64_t accepted = 0;  // per-event results of the answers
  std::uint64_t duplicates = 0;
  std::uint64_t rejected = 0;
  std::uint64_t failed = 0;
  // Events of attempts whose fate is unknown (no answer, or "failed"): each
  // may have reached the broker, and its retry then counts as a duplicate.
  std::uint64_t ambiguous = 0;
  std::uint64_t gave_up = 0;       // events dropped after --max-retries
  std::uint64_t permanent = 0;     // events of requests answered 4xx (not 429)
  std::string first_error;
  std::vector<std::uint32_t> latencies_us;
};

class Publisher {
 public:
  Publisher(const Options& o, loadtest::Workload& workload, StatsSampler& sampler)
      : o_(o), workload_(workload), sampler_(sampler), connections_(o.connections) {
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
  void run(Clock::time_point start) {
    start_ = start;
    last_tick_ = start;
    next_progress_ = start + std::chrono::seconds(1);
    std::vector<epoll_event> events(std::max<std::size_t>(64, connections_.size()));
    for (;;) {
      const auto now = Clock::now();
      expire_requests(now);
      for (std::size_t i = 0; i < connections_.size(); ++i) {
        if (!connections_[i].request && !dispatch(i, now)) break;
      }
      if (now >= next_progress_) progress(now);
      if (finished()) break;
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()),
                                 wait_ms(Clock::now()));
      if (n < 0 && errno != EINTR) throw std::runtime_error("epoll_wait failed");
      for (int k = 0; k < n; ++k) on_event(events[static_cast<std::size_t>(k)].data.u32,
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
    auto wake = std::min(next_progress_, now + std::chrono::milliseconds(50));
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
      next_rate_slot_ = start_ + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(static_cast<double>(dispatched_) / o_.rate));
      if (now < next_rate_slot_) return nullptr;
    }
    auto request = std::make_unique<Request>();
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
    const std::string body = workload_.request_body(request->events);
    c.out = loadtest::request_head("POST", "/publish", o_.port, o_.authorization, body.size()) + body;
    c.out_offset = 0;
    c.sent_at = now;
    if (totals_.requests == 0) first_send_ = now;
    ++totals_.requests;
    ++request->attempts;
    c.request = std::move(request);
    flush(index);
    return true;
  }

  void flush(std::size_t index) {
    Connection& c = connections_[index];
    while (c.out_offset < c.out.size()) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset,
                               MSG_NOSIGNAL);
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
    totals_.latencies_us.push_back(static_cast<std::uint32_t>(
        std::min<std::int64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now - c.sent_at).count(),
                               UINT32_MAX)));
    ++totals_.responses;
    ++totals_.status_counts[response.status];
    auto request = std::move(c.request);
    if (response.close) close_connection(c);

    json body = json::parse(response.body, nullptr, false);
    json results;  // null unless the answer has per-event results
    if (body.is_object() && body.contains("results") && body["results"].is_array()) {
      results = std::move(body["results"]);
    }
    const bool has_results = results.is_array();
    if (response.status == 200 && has_results) {
      count_results(*request, results, nullptr);
      return;
    }
    if (response.status == 429 || (response.status >= 500 && response.status != 501)) {
      if (response.status == 503 && has_results) {
        // Retry only the events that failed: the accepted ones must not come
        // back as duplicates, or the exact check could not hold.
        auto again = std::make_unique<Request>();
        again->attempts = request->attempts;
        count_results(*request, results, &again->events);
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

  // Adds the per-event results of an answer; collects the failed ones.
  void count_results(const Request& request, const json& results,
                     std::vector<PlannedEvent>* failed) {
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
      delay = std::chrono::milliseconds(std::clamp(std::atoi(retry_after.c_str()), 0, 5) * 1000);
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

  void progress(Clock::time_point now) {
    const double dt = seconds_between(last_tick_, now);
    const std::size_t from = latencies_at_tick_;
    std::vector<std::uint32_t> recent(totals_.latencies_us.begin() + static_cast<std::ptrdiff_t>(from),
                                      totals_.latencies_us.end());
    std::string p99 = "-";
    if (!recent.empty()) {
      const std::size_t k = (recent.size() * 99 + 99) / 100 - 1;
      std::nth_element(recent.begin(), recent.begin() + static_cast<std::ptrdiff_t>(k), recent.end());
      p99 = fixed(recent[k] / 1000.0, 1) + " ms";
    }
    const std::uint64_t events_done = totals_.accepted + totals_.duplicates;
    if (!o_.quiet) {
      std::string line = "loadgen [" + fixed(seconds_between(start_, now), 0) + "s] events " +
                         grouped(dispatched_);
      if (o_.workload.events > 0) line += "/" + grouped(o_.workload.events);
      line += "  " + grouped(static_cast<std::uint64_t>((events_done - events_at_tick_) / dt)) +
              " ev/s  " + grouped(static_cast<std::uint64_t>(recent.size() / dt)) + " req/s  p99 " +
              p99 + "  retries " + grouped(totals_.retries) + "  errors " +
              grouped(totals_.connection_errors + totals_.timeouts + totals_.permanent);
      if (sampler_.last_pending() >= 0) line += "  lag " + grouped(static_cast<std::uint64_t>(sampler_.last_pending()));
      std::cerr << line << "\n";
    }
    last_tick_ = now;
    latencies_at_tick_ = totals_.latencies_us.size();
    events_at_tick_ = events_done;
    next_progress_ += std::chrono::seconds(1);
    if (next_progress_ < now) next_progress_ = now + std::chrono::seconds(1);
  }

  const Options& o_;
  loadtest::Workload& workload_;
  StatsSampler& sampler_;
  std::vector<Connection> connections_;
  std::deque<std::unique_ptr<Request>> retries_;
  int epoll_ = -1;
  bool plan_done_ = false;
  std::uint64_t dispatched_ = 0;
  Totals totals_;
  Clock::time_point start_, first_send_, end_, last_tick_, next_progress_, next_rate_slot_;
  std::size_t latencies_at_tick_ = 0;
  std::uint64_t events_at_tick_ = 0;
};

// ---------------------------------------------------------------- verification

struct Verification {
  bool done = false;  // the pipeline stored everything before the timeout
  bool ok = false;
  double end_to_end_seconds = 0;
  Stats before, after;
  std::vector<std::string> mismatches;
};

/// Waits (bounded) until the stack is idle, then returns its counters.
std::optional<Stats> idle_baseline(loadtest::BlockingClient& client, const Options& o) {
  const auto deadline = Clock::now() + o.drain_timeout;
  bool told = false;
  while (Clock::now() < deadline && !g_interrupted.load()) {
    const auto s = read_stats(client);
    if (s && s->pending == 0 && s->balanced()) return s;
    if (s && !told) {
      std::cerr << "loadgen: the stack is busy (pending " << s->pending
                << "); waiting for it to be idle before the baseline\n";
      told = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return std::nullopt;
}

Verification verify(loadtest::BlockingClient& client, const Options& o, const Stats& before,
                    std::uint64_t unique, std::uint64_t duplicates, std::uint64_t ambiguous,
                    Clock::time_point first_send) {
  Verification v;
  v.before = before;
  const auto deadline = Clock::now() + o.drain_timeout;
  auto next_progress = Clock::now() + std::chrono::seconds(1);
  std::optional<Stats> last;
  auto last_change = Clock::now();
  const auto u = static_cast<std::int64_t>(unique);
  const auto d_min = static_cast<std::int64_t>(duplicates);
  const auto d_max = static_cast<std::int64_t>(duplicates + ambiguous);
  while (Clock::now() < deadline && !g_interrupted.load()) {
    const auto s = read_stats(client);
    const auto now = Clock::now();
    if (s) {
      const Stats d = s->minus(before);
      v.after = *s;
      if (s->pending == 0 && s->balanced() && d.unique_processed == u &&
          d.duplicate_dropped >= d_min && d.duplicate_dropped <= d_max) {
        v.done = true;
        v.end_to_end_seconds = seconds_between(first_send, now);
        break;
      }
      // Counters only grow: past the expectation there is no way back.
      if (d.unique_processed > u || d.duplicate_dropped > d_max) break;
      const bool changed = !last || last->received != s->received ||
                           last->unique_processed != s->unique_processed ||
                           last->duplicate_dropped != s->duplicate_dropped || last->pending != s->pending;
      if (changed) last_change = now;
      // Idle, and still short: nothing more is coming.
      if (s->pending == 0 && now - last_change > std::chrono::seconds(5)) break;
      last = s;
      if (now >= next_progress && !o.quiet) {
        std::cerr << "loadgen waiting: unique_processed +" << grouped(static_cast<std::uint64_t>(std::max<std::int64_t>(d.unique_processed, 0)))
                  << "/" << grouped(unique) << "  duplicate_dropped +"
                  << grouped(static_cast<std::uint64_t>(std::max<std::int64_t>(d.duplicate_dropped, 0)))
                  << "/" << grouped(duplicates) << "  pending " << grouped(static_cast<std::uint64_t>(s->pending)) << "\n";
        next_progress = now + std::chrono::seconds(1);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  const Stats d = v.after.minus(before);
  if (!v.done) v.mismatches.push_back("the pipeline did not finish within --timeout (" +
                                      std::to_string(o.drain_timeout.count() / 1000) + " s)");
  if (d.unique_processed != u) {
    v.mismatches.push_back("unique_processed grew by " + std::to_string(d.unique_processed) +
                           ", expected " + std::to_string(u));
  }
  if (d.duplicate_dropped < d_min || d.duplicate_dropped > d_max) {
    v.mismatches.push_back("duplicate_dropped grew by " + std::to_string(d.duplicate_dropped) +
                           ", expected " + std::to_string(d_min) +
                           (d_max != d_min ? " to " + std::to_string(d_max) : std::string()));
  }
  if (v.after.pending != 0) v.mismatches.push_back("pending is " + std::to_string(v.after.pending));
  if (!v.after.balanced()) {
    v.mismatches.push_back("received (" + std::to_string(v.after.received) +
                           ") != unique_processed + duplicate_dropped + dead_lettered");
  }
  if (d.dead_lettered != 0) {
    v.mismatches.push_back("dead_lettered grew by " + std::to_string(d.dead_lettered));
  }
  v.ok = v.mismatches.empty();
  return v;
}

// ---------------------------------------------------------------- summary

double percentile_ms(const std::vector<std::uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1] / 1000.0;
}

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int run(const Options& o) {
  loadtest::Workload workload(o.workload);
  loadtest::BlockingClient control(o.port, o.authorization, 10000);
  std::optional<Stats> before;
  if (o.verify) {
    before = idle_baseline(control, o);
    if (!before) {
      std::cerr << "loadgen: no usable GET /stats from " << o.url
                << " (is the stack up and idle? use --no-verify to publish anyway)\n";
      return 1;
    }
  }

  const auto& w = o.workload;
  std::cerr << "loadgen: " << (w.events > 0 ? grouped(w.events) + " events" : std::string("events"))
            << (o.duration.count() > 0 ? " for up to " + fixed(o.duration.count() / 1000.0, 0) + " s" : "")
            << " to " << o.url << ", " << o.connections << " connections, batch " << w.batch
            << ", " << fixed(w.duplicate_ratio * 100, 0) << "% duplicates, " << w.topics
            << " topics, " << w.payload_bytes << "-byte payloads, rate "
            << (o.rate > 0 ? grouped(static_cast<std::uint64_t>(o.rate)) + " ev/s" : std::string("unbounded"))
            << ", seed " << w.seed << ", run id " << w.run_id << "\n";

  const auto start = Clock::now();
  const double cpu_start = cpu_seconds();
  StatsSampler sampler(o, start);
  Publisher publisher(o, workload, sampler);
  publisher.run(start);
  const double cpu_used = cpu_seconds() - cpu_start;
  Totals t = publisher.totals();
  std::sort(t.latencies_us.begin(), t.latencies_us.end());
  const double publish_seconds = std::max(1e-9, seconds_between(publisher.first_send(), publisher.end()));
  const std::uint64_t sent = workload.planned();

  std::optional<Verification> v;
  if (o.verify) {
    v = verify(control, o, *before, workload.unique(), workload.duplicates(), t.ambiguous,
               publisher.first_send());
  }
  sampler.stop();

  // ---- report
  std::ostringstream out;
  out << "\nloadgen summary (run id " << w.run_id << ")\n";
  out << "  events sent        " << grouped(sent) << " (" << grouped(workload.unique()) << " unique, "
      << grouped(workload.duplicates()) << " duplicates: " << grouped(workload.duplicates_within_request())
      << " within a request, " << grouped(workload.duplicates_across_requests()) << " across requests)\n";
  out << "  requests           " << grouped(t.requests) << " (" << grouped(t.retries) << " retries, "
      << grouped(t.connection_errors) << " connection errors, " << grouped(t.timeouts) << " timeouts)\n";
  out << "  HTTP status        ";
  for (const auto& [status, count] : t.status_counts) out << status << ": " << grouped(count) << "  ";
  out << "\n  answers per event  accepted " << grouped(t.accepted) << ", duplicate " << grouped(t.duplicates)
      << ", rejected " << grouped(t.rejected) << ", failed " << grouped(t.failed) << "\n";
  out << "  publish time       " << fixed(publish_seconds, 3) << " s\n";
  out << "  request throughput " << grouped(static_cast<std::uint64_t>(t.responses / publish_seconds)) << " req/s\n";
  out << "  event throughput   " << grouped(static_cast<std::uint64_t>(sent / publish_seconds)) << " events/s\n";
  out << "  latency            p50 " << fixed(percentile_ms(t.latencies_us, 0.50), 2) << " ms, p95 "
      << fixed(percentile_ms(t.latencies_us, 0.95), 2) << " ms, p99 "
      << fixed(percentile_ms(t.latencies_us, 0.99), 2) << " ms, max "
      << fixed(percentile_ms(t.latencies_us, 1.0), 2) << " ms\n";
  out << "  loadgen CPU        " << fixed(cpu_used, 2) << " s (" << fixed(100 * cpu_used / publish_seconds, 0)
      << "% of one core)\n";
  if (v) {
    const Stats d = v->after.minus(v->before);
    if (v->done) {
      out << "  end to end         " << fixed(v->end_to_end_seconds, 3) << " s, "
          << grouped(static_cast<std::uint64_t>(sent / v->end_to_end_seconds)) << " events/s\n";
    }
    out << "  /stats delta       unique_processed +" << d.unique_processed << " (sent " << workload.unique()
        << "), duplicate_dropped +" << d.duplicate_dropped << " (sent " << workload.duplicates()
        << (t.ambiguous > 0 ? ", up to +" + std::to_string(t.ambiguous) + " from retries" : std::string())
        << "; broker " << d.duplicates_broker << ", database " << d.duplicates_database << "), pending "
        << v->after.pending << "\n";
    out << "  verification       " << (v->ok ? "OK" : "FAILED") << "\n";
    for (const auto& m : v->mismatches) out << "    - " << m << "\n";
  } else {
    out << "  verification       skipped (--no-verify)\n";
  }
  const bool errors = t.gave_up > 0 || t.permanent > 0 || t.rejected > 0;
  if (errors) {
    out << "  errors             " << grouped(t.gave_up) << " events given up, " << grouped(t.permanent)
        << " refused, " << grouped(t.rejected) << " rejected; first: " << t.first_error << "\n";
  }
  std::cout << out.str() << std::flush;

  if (!o.json_path.empty()) {
    json status_counts = json::object();
    for (const auto& [status, count] : t.status_counts) status_counts[std::to_string(status)] = count;
    json j = {
        {"tool", "loadgen"},
        {"config",
         {{"url", o.url}, {"events", w.events}, {"duration_seconds", o.duration.count() / 1000.0},
          {"connections", o.connections}, {"batch", w.batch}, {"duplicates", w.duplicate_ratio},
          {"within_request", w.within_request_share}, {"topics", w.topics},
          {"payload_bytes", w.payload_bytes}, {"rate", o.rate}, {"seed", w.seed},
          {"run_id", w.run_id}}},
        {"events_sent", sent},
        {"unique_sent", workload.unique()},
        {"duplicates_sent", workload.duplicates()},
        {"duplicates_within_request", workload.duplicates_within_request()},
        {"duplicates_across_requests", workload.duplicates_across_requests()},
        {"requests", t.requests},
        {"retries", t.retries},
        {"connection_errors", t.connection_errors},
        {"timeouts", t.timeouts},
        {"status_counts", status_counts},
        {"answers", {{"accepted", t.accepted}, {"duplicate", t.duplicates}, {"rejected", t.rejected},
                     {"failed", t.failed}}},
        {"ambiguous_event_attempts", t.ambiguous},
        {"events_given_up", t.gave_up},
        {"events_refused", t.permanent},
        {"publish_seconds", publish_seconds},
        {"requests_per_second", t.responses / publish_seconds},
        {"events_per_second", sent / publish_seconds},
        {"latency_ms",
         {{"p50", percentile_ms(t.latencies_us, 0.50)}, {"p95", percentile_ms(t.latencies_us, 0.95)},
          {"p99", percentile_ms(t.latencies_us, 0.99)}, {"max", percentile_ms(t.latencies_us, 1.0)}}},
        {"loadgen_cpu_seconds", cpu_used},
        {"samples", sampler.samples()},
    };
    if (v) {
      j["verify"] = {{"done", v->done},
                     {"ok", v->ok},
                     {"end_to_end_seconds", v->end_to_end_seconds},
                     {"end_to_end_events_per_second", v->done ? sent / v->end_to_end_seconds : 0.0},
                     {"stats_before", v->before.to_json()},
                     {"stats_after", v->after.to_json()},
                     {"delta", v->after.minus(v->before).to_json()},
                     {"mismatches", v->mismatches}};
    }
    std::ofstream file(o.json_path);
    file << j.dump(2) << "\n";
    if (!file) {
      std::cerr << "loadgen: cannot write " << o.json_path << "\n";
      return 1;
    }
  }
  return (errors || (v && !v->ok) || g_interrupted.load()) ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<Options> options;
  try {
    options = read_options(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "loadgen: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (!options) return 0;
  std::signal(SIGINT, [](int) { g_interrupted = true; });
  std::signal(SIGTERM, [](int) { g_interrupted = true; });
  try {
    return run(*options);
  } catch (const std::exception& e) {
    std::cerr << "loadgen: " << e.what() << "\n";
    return 1;
  }
}
