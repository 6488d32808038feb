#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace loadtest {

/// What a load test sends. The same settings give the same sequence of
/// events (keys, duplicates, payloads) in loadgen and in the stage benches.
struct WorkloadConfig {
  std::uint64_t events = 20000;  ///< events to plan; 0 = no limit (a time-bounded run)
  std::size_t batch = 100;       ///< events per request
  double duplicate_ratio = 0.3;  ///< share of events that repeat an earlier key
  std::size_t topics = 10;
  /// Key k's topic is this followed by k % topics ("loadtest.t3").
  std::string topic_prefix = "loadtest.t";
  std::size_t payload_bytes = 200;  ///< serialised size of each payload object
  std::uint64_t seed = 42;
  /// Part of every event_id, so that two runs against the same stack never
  /// share a key (the stack may already hold the data of an earlier run).
  std::string run_id = "r";
  /// Share of the duplicates that repeat an event of the same request (when
  /// the request already holds one); the others repeat a recent key.
  double within_request_share = 0.5;
};

/// One slot of the plan: the key index (0, 1, 2, ... for the unique keys in
/// the order they first appear) and whether the slot repeats an earlier one.
struct PlannedEvent {
  std::uint64_t key = 0;
  bool duplicate = false;
};

/// Plans the events batch by batch, deterministically from the seed, without
/// keeping the whole plan in memory: a key's topic, id, timestamp and payload
/// are functions of its index.
class Workload {
 public:
  explicit Workload(WorkloadConfig config);

  /// The next request's events (up to `batch`). False when the plan is
  /// complete (never for an unlimited plan).
  bool next_batch(std::vector<PlannedEvent>& out);

  std::string topic(std::uint64_t key) const;
  std::string event_id(std::uint64_t key) const;
  std::string timestamp(std::uint64_t key) const;      ///< RFC 3339 UTC with milliseconds and Z
  std::int64_t timestamp_ms(std::uint64_t key) const;  ///< the same, in ms since the epoch
  std::string payload_json(std::uint64_t key) const;

  /// Appends one event as the JSON object POST /publish takes.
  void append_event_json(std::string& out, std::uint64_t key) const;
  /// The JSON array body of a request with these events.
  std::string request_body(const std::vector<PlannedEvent>& events) const;

  const WorkloadConfig& config() const { return config_; }
  std::uint64_t planned() const { return planned_; }
  std::uint64_t unique() const { return unique_; }
  std::uint64_t duplicates() const { return planned_ - unique_; }
  std::uint64_t duplicates_within_request() const { return within_; }
  std::uint64_t duplicates_across_requests() const { return planned_ - unique_ - within_; }
  /// Duplicates an exact plan of config().events holds.
  std::uint64_t target_duplicates() const { return target_duplicates_; }

 private:
  double uniform();
  bool next_is_duplicate();

  WorkloadConfig config_;
  std::mt19937_64 rng_;
  std::int64_t base_ms_;  ///< timestamp of key 0 (a fixed date, so runs are reproducible)
  static constexpr std::size_t kPadSource = std::size_t{1} << 20;  ///< letters to take pads from
  std::string pad_;
  std::uint64_t planned_ = 0;
  std::uint64_t unique_ = 0;
  std::uint64_t within_ = 0;
  std::uint64_t target_duplicates_ = 0;
};

/// "2026-11-24T10:00:00.123Z" for milliseconds since the epoch.
std::string format_rfc3339_ms(std::int64_t epoch_ms);

}  // namespace loadtest
