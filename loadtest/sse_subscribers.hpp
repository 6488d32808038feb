#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "bench_subscribe_options.hpp"
#include "sse_reader.hpp"

namespace bench_subscribe {

/// How the bench's own events are known (publishing mode): event_id
/// "<run_id>-<key>" with key below max_keys. In hold mode run_prefix is
/// empty: events are anyone's, told apart by their event_id.
struct KeySpace {
  std::string run_prefix;
  std::uint64_t max_keys = 0;
};

/// What one reading stream got.
struct Tally {
  std::string pattern;
  std::size_t stride = 1;          ///< the arrival slot of key k is k / stride
  std::uint64_t events = 0;        ///< event frames received
  std::uint64_t unique = 0;        ///< distinct events among them
  std::uint64_t repeated = 0;      ///< an event received again
  std::uint64_t out_of_order = 0;  ///< an id not above the one before (or no id)
  std::uint64_t wrong_topic = 0;   ///< a topic its pattern does not match
  std::uint64_t foreign = 0;       ///< not an event of this run (publishing mode)
  std::uint64_t last_created = 0;
  std::uint64_t last_seq = 0;
  bool ended = false;  ///< the server ended or cut the stream
  double ended_at = 0;
  std::string end_reason;
  std::vector<std::int64_t> arrival_ns;  ///< per slot: ns after the start, 0 = not yet
  std::unordered_set<std::string> seen;  ///< hold mode: the event ids
};

/// N streams that read everything and S that never read after their head
/// (a client that stopped reading), all on one epoll loop: GET /subscribe
/// over HTTP/1.1 (chunked), each event recorded with its arrival time.
class Subscriptions {
 public:
  Subscriptions(const Options& o, KeySpace keys, Clock::time_point start);
  ~Subscriptions();
  Subscriptions(const Subscriptions&) = delete;
  Subscriptions& operator=(const Subscriptions&) = delete;

  /// Connects every stream (a few dozen at a time) and waits for each
  /// response head. Throws std::runtime_error when one is refused (say a 503
  /// past SUBSCRIBE_MAX_CLIENTS) or `deadline` passes.
  void open(Clock::time_point deadline);
  /// One round of the loop: waits up to `timeout_ms`, reads what came.
  void poll(int timeout_ms);
  /// Closes every connection.
  void close_all();

  /// Distinct events received over all reading streams (any thread).
  std::uint64_t unique_total() const { return unique_total_.load(); }
  /// Reading streams the server has not ended (any thread).
  std::size_t live_open() const { return live_open_.load(); }
  std::uint64_t bytes_total() const { return bytes_total_.load(); }
  /// Read these only once poll() is no longer running.
  const std::vector<Tally>& tallies() const { return tallies_; }
  std::uint64_t pings() const;
  /// Stalled streams whose head came (they were admitted).
  std::size_t stalled_admitted() const { return stalled_admitted_; }
  /// When the server hung up on each stalled stream (seconds after the
  /// start), as this side saw it: a cut whose unsent bytes still wait for
  /// the peer's window may not show here (ingest's metrics say it).
  const std::vector<double>& stalled_hangups() const { return stalled_hangups_; }

 private:
  struct Conn {
    int fd = -1;
    loadtest::SseReader reader;
    bool stalled = false;
    bool head = false;  ///< the 200 head came
  };
  void connect(std::size_t index);
  void on_readable(std::size_t index);
  void on_head(std::size_t index);
  void finish(std::size_t index, const std::string& why);
  void record(Tally& tally, const loadtest::SseEvent& event, std::int64_t now_ns);
  bool key_of(const std::string& event_id, std::uint64_t& key) const;

  const Options& o_;
  const KeySpace keys_;
  const Clock::time_point start_;
  int epoll_ = -1;
  std::vector<Conn> conns_;  ///< reading streams first, then the stalled ones
  std::vector<Tally> tallies_;
  std::vector<loadtest::SseEvent> batch_;
  std::size_t heads_ = 0;
  std::size_t stalled_admitted_ = 0;
  std::vector<double> stalled_hangups_;
  std::string failure_;  ///< the first stream that could not open, and why
  std::atomic<std::uint64_t> unique_total_{0};
  std::atomic<std::size_t> live_open_{0};
  std::atomic<std::uint64_t> bytes_total_{0};
};

}  // namespace bench_subscribe
