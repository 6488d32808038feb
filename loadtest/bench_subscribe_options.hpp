#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

/// The pieces of the bench_subscribe program (bench_subscribe.cpp,
/// bench_subscribe_options.cpp, bench_subscribe_report.cpp, and the
/// subscriptions' engine in sse_subscribers.cpp).
namespace bench_subscribe {

using Clock = std::chrono::steady_clock;

/// Which topic each subscription asks for: every topic of the bench
/// (`<prefix>*`), or one of its own (`<prefix><i mod topics>`).
enum class Assignment { kAll, kOwn };

/// bench_subscribe's command line, read and checked.
struct Options {
  std::string url;
  std::uint16_t port = 0;
  std::string authorization;
  std::size_t subscribers = 100;  ///< subscriptions that read
  std::size_t stalled = 0;        ///< subscriptions that never read after their head
  int stalled_rcvbuf = 4096;      ///< SO_RCVBUF of those (bytes, before the kernel doubles it)
  std::string topic_prefix = "bench.lat.";
  std::size_t topics = 10;
  Assignment assignment = Assignment::kAll;
  /// Only open the subscriptions and read until SIGTERM/SIGINT or --duration
  /// (someone else publishes); then check them against GET /stats.
  bool hold = false;
  double rate = 1000;  ///< events per second, one per request
  std::chrono::milliseconds duration{10000};
  std::size_t connections = 8;  ///< publishing connections
  std::size_t payload_bytes = 200;
  std::chrono::milliseconds open_timeout{60000};
  std::chrono::milliseconds drain_timeout{30000};
  std::chrono::milliseconds request_timeout{10000};
  std::string run_id;
  std::string json_path;
  std::string ready_file;
  int watch_pid = 0;  ///< a process whose RSS to record (ingest's)
  bool quiet = false;

  /// The events a publishing run sends at most: rate x duration.
  std::uint64_t max_events() const;
  /// The topic (or pattern) subscription `i` asks for.
  std::string pattern(std::size_t i) const;
  /// The topic of the bench's event `key`.
  std::string topic(std::uint64_t key) const { return topic_prefix + std::to_string(key % topics); }
};

/// Reads and checks the flags: nullopt after --help. Throws
/// std::invalid_argument for a bad flag or combination.
std::optional<Options> read_options(int argc, const char* const* argv);

/// Whether `topic` matches `pattern` (a topic, or NATS wildcards: `*` one
/// token, `>` one or more at the end), as ingest decides it.
bool topic_matches(const std::string& pattern, const std::string& topic);

}  // namespace bench_subscribe
