#pragma once

// The events table's partitions by arrival (migrations/0005): made ahead of
// time, dropped whole by age (EVENTS_RETENTION) and by size
// (EVENTS_MAX_BYTES). Every processor runs this; an advisory lock lets one
// at a time act, and every step can be cut (kill -9, a lost connection) and
// finished by the next pass.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "processor/config.hpp"

namespace processor {

/// One partition of events.
struct Partition {
  std::string name;
  std::optional<std::int64_t> from_micros;  ///< nullopt: from the beginning (MINVALUE)
  std::int64_t to_micros = 0;               ///< exclusive
  std::uint64_t bytes = 0;                  ///< heap, indexes, TOAST
  bool detach_pending = false;              ///< a DETACH CONCURRENTLY was cut short
};

/// What one retention pass did.
struct RetentionPass {
  bool ran = false;  ///< false: another processor holds the lock
  std::vector<std::string> created;
  std::vector<std::string> dropped_by_age;
  std::vector<std::string> dropped_by_size;
  std::vector<std::string> sealed;    ///< partitions sealed now (their range of ts recorded)
  std::vector<std::string> filtered;  ///< sealed partitions whose key filter was built
  std::vector<Partition> partitions;  ///< attached after the pass, oldest first
  std::uint64_t bytes = 0;            ///< of those
  double seconds = 0;
};

/// Runs `work` under the partition lock, a session-level advisory lock: one
/// session at a time makes, drops, seals and packs partitions. False, and
/// `work` not run, while another session holds it. Throws what `work`
/// throws, the lock released (or gone with the connection).
bool under_partition_lock(pqxx::connection& conn, const std::function<void()>& work);

/// The database's clock (clock_timestamp()), in microseconds since the epoch.
std::int64_t database_now_micros(pqxx::connection& conn);

/// The partition bound at or after `micros`: the next multiple of `interval`.
std::int64_t next_boundary(std::int64_t micros, std::chrono::milliseconds interval);

/// "events_p20261204_000000": the partition starting at `micros` (UTC).
std::string partition_name(std::int64_t micros);

/// The attached partitions of events, oldest first.
std::vector<Partition> list_partitions(pqxx::connection& conn);

/// Makes the partitions from the newest one's end to `ahead` intervals past
/// the database's now(). Returns their names. Throws pqxx errors.
std::vector<std::string> ensure_partitions(pqxx::connection& conn,
                                           const PartitionSettings& settings);

/// One pass: finishes what an earlier pass left (a DETACH cut short, a
/// detached table not dropped), makes partitions ahead, drops by age then
/// by size. Skipped (ran = false) while another session holds the lock.
/// Throws pqxx errors; the next pass takes over.
/// `build_filters`: and builds the key filters of the sealed partitions
/// (processor/src/key_filters.hpp).
RetentionPass run_retention(pqxx::connection& conn, const PartitionSettings& settings,
                            bool build_filters = false);

}  // namespace processor
