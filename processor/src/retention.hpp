#pragma once

#include <atomic>
#include <memory>
#include <pqxx/connection>

#include "metrics.hpp"
#include "processor/config.hpp"
#include "processor/partitions.hpp"

namespace processor {

class KeyFilters;

/// The events table's partitions, on a thread of its own (a pass may wait on
/// PostgreSQL for a while: DETACH CONCURRENTLY waits for the queries that
/// still read a partition): every EVENTS_RETENTION_CHECK_INTERVAL, the
/// partitions ahead are made and those past EVENTS_RETENTION or
/// EVENTS_MAX_BYTES dropped (processor/partitions.hpp).
class Retention {
 public:
  /// `filters`: refreshed after each pass (nullable).
  Retention(const ProcessorConfig& config, ProcessorMetrics& metrics,
            std::shared_ptr<KeyFilters> filters = nullptr);
  /// One pass now; false when it failed (logged). The processor runs one
  /// before its workers start, so that the partitions they write exist.
  bool pass();
  /// Passes until `stopping`.
  void run(const std::atomic<bool>& stopping);

 private:
  void report_pack(const PackedPartition& packed) const;

  const ProcessorConfig& config_;
  ProcessorMetrics& metrics_;
  std::shared_ptr<KeyFilters> filters_;
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace processor
