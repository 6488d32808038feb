#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "ingest/event_store.hpp"
#include "pipeline/jetstream.hpp"
#include "pipeline/timestamp.hpp"

namespace ingest {

/// Where /stats reads the durable counters: EventStore, or a fake.
class CounterReader {
 public:
  virtual ~CounterReader() = default;
  virtual bool schema_ready() = 0;
  /// Every counter from one snapshot; throws when the database fails.
  virtual PipelineCounters counters() = 0;
};

/// Where /stats reads the consumer's backlog: the broker, or a fake.
class BacklogReader {
 public:
  virtual ~BacklogReader() = default;
  /// nullopt when the broker cannot say.
  virtual std::optional<pipeline::nats::ConsumerBacklog> backlog() = 0;
};

/// The answer to GET /stats, free of HTTP.
struct StatsResult {
  enum class Kind { kOk, kNoSchema, kUnavailable };
  Kind kind = Kind::kOk;
  std::string body;   ///< the JSON document for kOk
  std::string error;  ///< for the others
};

/// GET /stats: the durable counters plus the broker's backlog, read in the
/// order that keeps them consistent.
class StatsService {
 public:
  StatsService(CounterReader& counters, BacklogReader& backlog)
      : counters_(counters),
        backlog_(backlog),
        started_at_(pipeline::now_utc()),
        started_clock_(std::chrono::steady_clock::now()) {}

  StatsResult snapshot();

 private:
  CounterReader& counters_;
  BacklogReader& backlog_;
  pipeline::UtcTimestamp started_at_;
  std::chrono::steady_clock::time_point started_clock_;
};

}  // namespace ingest
