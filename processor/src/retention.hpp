#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <pqxx/connection>

#include "metrics.hpp"
#include "packing.hpp"
#include "processor/config.hpp"

namespace processor {

class KeyFilters;

/// The events table's partitions, on a thread of its own (a pass may wait on
/// PostgreSQL for a while: DETACH CONCURRENTLY waits for the queries that
/// still read a partition): every EVENTS_RETENTION_CHECK_INTERVAL, the
/// partitions ahead are made and those past EVENTS_RETENTION or
/// EVENTS_MAX_BYTES dropped (processor/partitions.hpp); then, on a time
/// limit of its own, one sealed partition packed (packing.hpp).
class Retention {
 public:
  /// `filters`: refreshed after each pass (nullable).
  Retention(const ProcessorConfig& config, ProcessorMetrics& metrics,
            std::shared_ptr<KeyFilters> filters = nullptr);
  /// One pass now; false when it failed (logged). The processor runs one
  /// before its workers start, so that the partitions they write exist,
  /// without `pack` (a rebuild would hold the start back).
  bool pass(bool pack = true);
  /// Passes until `stopping`.
  void run(const std::atomic<bool>& stopping);
  /// From another thread, at shutdown: cancels a rebuild under way (not
  /// recorded as a failure: the next start's passes try again), and no
  /// other starts.
  void interrupt();

 private:
  /// The partitions made, dropped, sealed, filtered; false when it failed
  /// (logged).
  bool retain();
  /// Packs one sealed partition; false when it failed (logged).
  bool pack();
  void connect();
  void disconnect();
  void report_pack(const PackPass& pass) const;

  const ProcessorConfig& config_;
  ProcessorMetrics& metrics_;
  std::shared_ptr<KeyFilters> filters_;
  std::atomic<bool> interrupted_{false};
  std::mutex conn_mutex_;  ///< conn_ made, dropped, or cancelled from interrupt()
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace processor
