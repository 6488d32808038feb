#include "sse_subscribers.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <system_error>

#include "http.hpp"

namespace bench_subscribe {
namespace {

// Streams connected and waiting for their head at once while opening: the
// server's accept queue and its worker pool see a steady trickle.
constexpr std::size_t kOpenWindow = 32;
// Bytes read from one stream per wake-up, so that one busy stream does not
// hold up the others.
constexpr std::size_t kReadQuantum = 1 << 20;

std::string percent_encode(const std::string& text) {
  static const char* const kHex = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '.' || c == '-' || c == '_' || c == '*') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

std::string errno_text(int error) { return std::generic_category().message(error); }

}  // namespace

Subscriptions::Subscriptions(const Options& o, KeySpace keys, Clock::time_point start)
    : o_(o), keys_(std::move(keys)), start_(start), conns_(o.subscribers + o.stalled) {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) throw std::runtime_error("epoll_create1: " + errno_text(errno));
  tallies_.resize(o.subscribers);
  for (std::size_t i = 0; i < o.subscribers; ++i) {
    Tally& t = tallies_[i];
    t.pattern = o.pattern(i);
    if (keys_.run_prefix.empty()) continue;  // hold mode: no keys of ours
    t.stride = o.assignment == Assignment::kOwn ? o.topics : 1;
    t.arrival_ns.assign(keys_.max_keys / t.stride + 1, 0);
  }
  for (std::size_t i = o.subscribers; i < conns_.size(); ++i) conns_[i].stalled = true;
}

Subscriptions::~Subscriptions() {
  close_all();
  ::close(epoll_);
}

void Subscriptions::close_all() {
  for (auto& c : conns_) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
  }
  live_open_ = 0;
}

std::uint64_t Subscriptions::pings() const {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < o_.subscribers; ++i) n += conns_[i].reader.pings();
  return n;
}

void Subscriptions::open(Clock::time_point deadline) {
  const std::size_t total = conns_.size();
  std::size_t next = 0;
  while (heads_ < total) {
    while (failure_.empty() && next < total && next - heads_ < kOpenWindow) connect(next++);
    if (!failure_.empty()) throw std::runtime_error(failure_);
    if (Clock::now() >= deadline) {
      throw std::runtime_error(std::to_string(heads_) + " of " + std::to_string(total) +
                               " streams were open when --open-timeout passed");
    }
    poll(50);
  }
  if (!failure_.empty()) throw std::runtime_error(failure_);
}

void Subscriptions::connect(std::size_t index) {
  Conn& c = conns_[index];
  const std::string pattern =
      c.stalled ? o_.pattern(index - o_.subscribers) : tallies_[index].pattern;
  c.fd = loadtest::connect_loopback(o_.port, true, c.stalled ? o_.stalled_rcvbuf : 0);
  if (c.fd < 0) {
    failure_ = "stream " + std::to_string(index) +
               ": cannot connect to 127.0.0.1:" + std::to_string(o_.port) + ": " +
               errno_text(errno);
    return;
  }
  std::string request = loadtest::request_head("GET", "/subscribe?topic=" + percent_encode(pattern),
                                               o_.port, o_.authorization, 0);
  // What EventSource sends (WHATWG HTML, "Server-sent events"); the head ends
  // with an empty line.
  request.insert(request.size() - 2, "Accept: text/event-stream\r\nCache-Control: no-cache\r\n");
  // A fresh loopback socket takes a few hundred bytes at once.
  if (::send(c.fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    finish(index, "cannot send the request: " + errno_text(errno));
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.u32 = static_cast<std::uint32_t>(index);
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
    finish(index, "epoll_ctl: " + errno_text(errno));
  }
}

void Subscriptions::poll(int timeout_ms) {
  epoll_event events[256];
  const int n = ::epoll_wait(epoll_, events, 256, timeout_ms);
  if (n < 0 && errno != EINTR) throw std::runtime_error("epoll_wait: " + errno_text(errno));
  for (int k = 0; k < n; ++k) {
    const std::size_t index = events[k].data.u32;
    Conn& c = conns_[index];
    if (c.fd < 0) continue;
    if (c.stalled && c.head) {
      // A hang-up of a stream we no longer read: note it, stop hearing of it.
      ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
      stalled_hangups_.push_back(std::chrono::duration<double>(Clock::now() - start_).count());
      continue;
    }
    on_readable(index);
  }
}

void Subscriptions::on_readable(std::size_t index) {
  Conn& c = conns_[index];
  char buffer[65536];
  bool closed = false;
  int error = 0;
  for (std::size_t taken = 0; taken < kReadQuantum;) {
    const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      closed = true;
      error = n < 0 ? errno : 0;
      break;
    }
    const auto now_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count();
    taken += static_cast<std::size_t>(n);
    bytes_total_ += static_cast<std::uint64_t>(n);
    batch_.clear();
    if (!c.reader.feed(buffer, static_cast<std::size_t>(n), batch_)) {
      finish(index, "protocol error: " + c.reader.error());
      return;
    }
    if (!c.stalled) {
      for (const auto& event : batch_) record(tallies_[index], event, now_ns);
    }
    if (!c.head && c.reader.head_done() && c.reader.status() == 200) on_head(index);
    if (c.stalled && c.head) return;  // never read again
  }
  const auto& r = c.reader;
  if (r.head_done() && r.status() != 200 && (r.complete() || closed)) {
    finish(index, "HTTP " + std::to_string(r.status()) + ": " + r.error_body().substr(0, 300));
  } else if (r.complete()) {
    finish(index, "the server ended the stream");
  } else if (closed) {
    finish(index, error != 0 ? "connection error: " + errno_text(error)
                             : std::string("the server closed the connection"));
  }
}

void Subscriptions::on_head(std::size_t index) {
  Conn& c = conns_[index];
  c.head = true;
  ++heads_;
  if (!c.stalled) {
    ++live_open_;
    return;
  }
  ++stalled_admitted_;
  // From here on it reads nothing: its window fills, then the server's buffers.
  epoll_event ev{};
  ev.events = 0;  // only hang-ups and errors, which epoll always reports
  ev.data.u32 = static_cast<std::uint32_t>(index);
  ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
}

void Subscriptions::finish(std::size_t index, const std::string& why) {
  Conn& c = conns_[index];
  if (c.fd >= 0) ::close(c.fd);  // also leaves the epoll set
  c.fd = -1;
  if (!c.head) {
    if (failure_.empty()) {
      failure_ = (c.stalled ? "stalled stream " : "stream ") + std::to_string(index) + ": " + why;
    }
    return;
  }
  if (c.stalled) return;
  Tally& t = tallies_[index];
  t.ended = true;
  t.ended_at = std::chrono::duration<double>(Clock::now() - start_).count();
  t.end_reason = why;
  --live_open_;
}

bool Subscriptions::key_of(const std::string& event_id, std::uint64_t& key) const {
  const std::string& prefix = keys_.run_prefix;
  if (event_id.size() <= prefix.size() || event_id.compare(0, prefix.size(), prefix) != 0) {
    return false;
  }
  key = 0;
  for (std::size_t i = prefix.size(); i < event_id.size(); ++i) {
    const char ch = event_id[i];
    if (ch < '0' || ch > '9' || key > UINT64_MAX / 10) return false;
    key = key * 10 + static_cast<std::uint64_t>(ch - '0');
  }
  return key < keys_.max_keys;
}

void Subscriptions::record(Tally& t, const loadtest::SseEvent& event, std::int64_t now_ns) {
  ++t.events;
  std::uint64_t created = 0;
  std::uint64_t seq = 0;
  if (!loadtest::parse_sse_id(event.id, created, seq)) {
    ++t.out_of_order;  // without its id an event cannot be resumed from: as bad
  } else {
    const bool after = created > t.last_created || (created == t.last_created && seq > t.last_seq);
    if (!after) ++t.out_of_order;
    t.last_created = created;
    t.last_seq = seq;
  }
  if (!topic_matches(t.pattern, event.topic)) {
    ++t.wrong_topic;  // not counted as received: it is no event of this stream's
    return;
  }
  if (keys_.run_prefix.empty()) {
    if (t.seen.insert(event.event_id).second) {
      ++t.unique;
      ++unique_total_;
    } else {
      ++t.repeated;
    }
    return;
  }
  std::uint64_t key = 0;
  if (!key_of(event.event_id, key)) {
    ++t.foreign;
    return;
  }
  std::int64_t& arrival = t.arrival_ns[key / t.stride];
  if (arrival != 0) {
    ++t.repeated;
    return;
  }
  arrival = std::max<std::int64_t>(now_ns, 1);
  ++t.unique;
  ++unique_total_;
}

}  // namespace bench_subscribe
