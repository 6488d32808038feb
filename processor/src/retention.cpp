#include "retention.hpp"

#include <pqxx/nontransaction>

#include "key_filters.hpp"
#include "pipeline/database.hpp"
#include "pipeline/logging.hpp"
#include "processor/partitions.hpp"
#include "worker.hpp"

namespace processor {
namespace {

namespace log = pipeline::log;

// A pass waits at most this long on PostgreSQL (a DETACH CONCURRENTLY waits
// for every query that may still read the partition); cut there, the next
// pass finishes it.
constexpr std::chrono::minutes kPassLimit{5};

std::string names(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& name : list) out += (out.empty() ? "" : ",") + name;
  return out;
}

}  // namespace

Retention::Retention(const ProcessorConfig& config, ProcessorMetrics& metrics,
                     std::shared_ptr<KeyFilters> filters)
    : config_(config), metrics_(metrics), filters_(std::move(filters)) {
  metrics_.events_max_bytes->Set(static_cast<double>(config.partitions.max_bytes));
}

bool Retention::pass(bool pack) {
  if (!retain()) return false;
  return !pack || interrupted_.load() || this->pack();
}

void Retention::interrupt() {
  interrupted_ = true;
  const std::lock_guard<std::mutex> lock(conn_mutex_);
  if (!conn_) return;
  try {
    conn_->cancel_query();  // PQcancel: whatever statement runs now, if any
  } catch (const std::exception& e) {
    log::warn("retention_cancel_failed", {{"error", log::first_line(e.what())}});
  }
}

void Retention::connect() {
  const std::lock_guard<std::mutex> lock(conn_mutex_);
  if (conn_ && conn_->is_open()) return;
  conn_ = std::make_unique<pqxx::connection>(config_.common.database_url);
  pqxx::nontransaction tx(*conn_);
  tx.exec("SET statement_timeout = '" + std::to_string(kPassLimit.count()) + "min'");
}

void Retention::disconnect() {
  const std::lock_guard<std::mutex> lock(conn_mutex_);
  conn_.reset();
}

bool Retention::pack() {
  try {
    connect();
    // Its own time limit: the rebuild may take the whole statement timeout,
    // whatever the retention pass before it took.
    const pipeline::db::Deadline deadline(*conn_, 2 * kPassLimit + std::chrono::seconds(5));
    report_pack(run_pack(*conn_, config_.partitions, interrupted_));
    return true;
  } catch (const std::exception& e) {
    disconnect();
    if (interrupted_.load()) {
      log::info("partition_pack_interrupted", {{"error", log::first_line(e.what())}});
      return true;
    }
    metrics_.retention_failures->Increment();
    log::warn("partition_pack_failed", {{"error", log::first_line(e.what())}});
    return false;
  }
}

bool Retention::retain() {
  try {
    connect();
    const pipeline::db::Deadline deadline(*conn_, kPassLimit + std::chrono::seconds(5));
    const RetentionPass pass = run_retention(*conn_, config_.partitions, filters_ != nullptr);
    if (filters_) {
      filters_->refresh(*conn_);
      const auto held = filters_->snapshot();
      metrics_.key_filter_partitions->Set(static_cast<double>(held->filters.size()));
      metrics_.key_filter_bytes->Set(static_cast<double>(held->memory_bytes));
    }
    if (!pass.ran) return true;  // another processor holds the lock
    if (!pass.sealed.empty()) log::info("partitions_sealed", {{"partitions", names(pass.sealed)}});
    if (!pass.filtered.empty()) {
      log::info("key_filters_built", {{"partitions", names(pass.filtered)}});
    }
    metrics_.event_partitions->Set(static_cast<double>(pass.partitions.size()));
    metrics_.events_bytes->Set(static_cast<double>(pass.bytes));
    metrics_.retention_pass_seconds->Set(pass.seconds);
    metrics_.partitions_dropped_age->Increment(static_cast<double>(pass.dropped_by_age.size()));
    metrics_.partitions_dropped_size->Increment(static_cast<double>(pass.dropped_by_size.size()));
    if (!pass.created.empty()) {
      log::info("partitions_created", {{"partitions", names(pass.created)}});
    }
    if (!pass.dropped_by_age.empty() || !pass.dropped_by_size.empty()) {
      log::info("partitions_dropped", {{"by_age", names(pass.dropped_by_age)},
                                       {"by_size", names(pass.dropped_by_size)},
                                       {"bytes_left", pass.bytes},
                                       {"seconds", pass.seconds}});
    }
    if (config_.partitions.max_bytes > 0 && pass.bytes > config_.partitions.max_bytes) {
      // Only the partitions being written are left: retention cannot help.
      log::warn("events_over_max_bytes",
                {{"bytes", pass.bytes}, {"max_bytes", config_.partitions.max_bytes}});
    }
    return true;
  } catch (const std::exception& e) {
    disconnect();
    metrics_.retention_failures->Increment();
    log::warn("retention_failed", {{"error", log::first_line(e.what())}});
    return false;
  }
}

void Retention::report_pack(const PackPass& pass) const {
  if (!pass.cut_rebuilds.empty()) {
    log::warn("cut_rebuilds_dropped", {{"indexes", names(pass.cut_rebuilds)}});
  }
  if (!pass.packed) return;
  const PackedPartition& packed = *pass.packed;
  if (!packed.error.empty()) {
    metrics_.partitions_pack_failed->Increment();
    log::warn("partition_pack_failed", {{"partition", packed.name},
                                        {"attempt", packed.attempt},
                                        {"attempts", kPackAttempts},
                                        {"bytes", packed.bytes_before},
                                        {"seconds", packed.seconds},
                                        {"error", packed.error}});
    return;
  }
  metrics_.partitions_packed->Increment();
  if (packed.bytes_after < packed.bytes_before) {
    metrics_.pack_bytes_saved->Increment(
        static_cast<double>(packed.bytes_before - packed.bytes_after));
  }
  log::info("partition_packed", {{"partition", packed.name},
                                 {"attempt", packed.attempt},
                                 {"bytes_before", packed.bytes_before},
                                 {"bytes_after", packed.bytes_after},
                                 {"seconds", packed.seconds}});
}

void Retention::run(const std::atomic<bool>& stopping) {
  interrupted_ = false;  // started again after a stop
  while (!stopping.load()) {
    sleep_unless_stopping(stopping, config_.retention_check_interval);
    if (!stopping.load()) pass();
  }
}

}  // namespace processor
