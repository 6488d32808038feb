#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http.hpp"
#include "loadgen_options.hpp"

namespace loadgen {

/// The counters of GET /stats.
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
  nlohmann::json to_json() const;
};

/// GET /stats, or nullopt when there is no usable answer.
std::optional<Stats> read_stats(loadtest::BlockingClient& client);

/// Samples /stats on its own thread while the run goes on: the consumer lag
/// and the processed counters over time (nothing when sample_interval is 0).
class StatsSampler {
 public:
  StatsSampler(const Options& o, Clock::time_point start);
  ~StatsSampler();
  StatsSampler(const StatsSampler&) = delete;
  StatsSampler& operator=(const StatsSampler&) = delete;

  void stop();
  /// The last sample's pending, -1 before the first.
  std::int64_t last_pending() const { return last_pending_.load(); }
  nlohmann::json samples();

 private:
  void run(const Options& o);

  Clock::time_point start_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> last_pending_{-1};
  std::mutex mutex_;
  nlohmann::json samples_ = nlohmann::json::array();
};

struct Verification {
  bool done = false;  // the pipeline stored everything before the timeout
  bool ok = false;
  double end_to_end_seconds = 0;
  Stats before, after;
  std::vector<std::string> mismatches;
};

/// Waits (bounded by --timeout) until the stack is idle, then returns its
/// counters: the baseline the deltas are taken from.
std::optional<Stats> idle_baseline(loadtest::BlockingClient& client, const Options& o);

/// Waits (bounded by --timeout) until the pipeline has stored what was sent,
/// then checks the deltas: unique_processed == unique, duplicate_dropped in
/// [duplicates, duplicates + ambiguous], nothing pending, counters balanced.
Verification verify(loadtest::BlockingClient& client, const Options& o, const Stats& before,
                    std::uint64_t unique, std::uint64_t duplicates, std::uint64_t ambiguous,
                    Clock::time_point first_send);

}  // namespace loadgen
