// Time limits of database sessions: libpq's own (session_url) and a
// client-side deadline for the server that never answers (Deadline).
#include <sys/socket.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <pqxx/connection>
#include <thread>

#include "pipeline/database.hpp"

namespace pipeline::db {
namespace {

bool is_uri(const std::string& url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

// Percent-encodes a URI query value (RFC 3986 unreserved kept).
std::string uri_encode(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4U];
      out += kHex[u & 15U];
    }
  }
  return out;
}

// One watcher thread for every Deadline of the process: it sleeps until the
// earliest one and shuts down the sockets whose time is up. A socket is
// shut down only while its Deadline is registered, and unregistering takes
// the same lock, so a socket number reused after its connection closed is
// never touched.
class Watchdog {
 public:
  static Watchdog& instance() {
    static Watchdog watchdog;
    return watchdog;
  }

  std::uint64_t add(int fd, std::chrono::steady_clock::time_point when) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::uint64_t id = ++next_id_;
    entries_[id] = Entry{fd, when, false};
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    wake_.notify_all();
    return id;
  }

  void remove(std::uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.erase(id);
  }

  bool expired(std::uint64_t id) const {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = entries_.find(id);
    return it != entries_.end() && it->second.fired;
  }

  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  Watchdog() = default;

  struct Entry {
    int fd;
    std::chrono::steady_clock::time_point when;
    bool fired;
  };

  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!quit_) {
      const auto now = std::chrono::steady_clock::now();
      auto next = now + std::chrono::seconds(1);
      for (auto& [id, entry] : entries_) {
        if (entry.fired) continue;
        if (entry.when <= now) {
          ::shutdown(entry.fd, SHUT_RDWR);
          entry.fired = true;
        } else {
          next = std::min(next, entry.when);
        }
      }
      wake_.wait_until(lock, next);
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::uint64_t, Entry> entries_;
  std::uint64_t next_id_ = 0;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace

std::string session_url(const std::string& url, const SessionLimits& limits) {
  const auto seconds = [](std::chrono::milliseconds ms) {
    return std::to_string(std::max<std::int64_t>(2, (ms.count() + 999) / 1000));
  };
  const std::vector<std::pair<std::string, std::string>> wanted = {
      {"connect_timeout", seconds(limits.connect_timeout)},
      {"keepalives", "1"},
      {"keepalives_idle", "5"},
      {"keepalives_interval", "2"},
      {"keepalives_count", "3"},
      {"tcp_user_timeout", "10000"},
      {"options", "-c statement_timeout=" + std::to_string(limits.statement_timeout.count())},
  };
  std::string out = url;
  const bool uri = is_uri(url);
  for (const auto& [key, value] : wanted) {
    const std::size_t at = url.find(key + "=");
    if (at != std::string::npos) {
      // The operator's own choice, except a connect_timeout longer than the
      // session's limit: connecting happens before a Deadline can watch the
      // socket, so it must stay within the limit by itself.
      if (key != "connect_timeout") continue;
      std::size_t begin = at + key.size() + 1;
      if (begin < url.size() && url[begin] == '\'') ++begin;
      const std::size_t end = url.find_first_not_of("0123456789", begin);
      const std::string digits = url.substr(begin, end == std::string::npos ? end : end - begin);
      if (digits.empty() || std::stoll(digits) <= std::stoll(value)) continue;
      out.replace(begin, digits.size(), value);
      continue;
    }
    if (uri) {
      out += out.find('?') == std::string::npos ? '?' : '&';
      out.append(key).append("=").append(uri_encode(value));
    } else {
      out.append(" ").append(key).append("='").append(value).append("'");
    }
  }
  return out;
}

Deadline::Deadline(pqxx::connection& conn, std::chrono::milliseconds timeout)
    : id_(Watchdog::instance().add(conn.sock(), std::chrono::steady_clock::now() + timeout)) {}

Deadline::~Deadline() { Watchdog::instance().remove(id_); }

bool Deadline::expired() const { return Watchdog::instance().expired(id_); }

}  // namespace pipeline::db
