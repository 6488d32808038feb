#pragma once
// Sealed partitions packed (migrations/0009). A sealed partition only ever
// loses rows, so its b-trees never split again: rebuilt full (fillfactor
// 100), they keep that size for the rest of its life. The rebuild is REINDEX
// TABLE CONCURRENTLY, which takes no lock that stops inserts or queries;
// cut short on the server (a statement timeout, a cancel, PostgreSQL
// killed), it leaves invalid copies of indexes behind (<index>_ccnew, or
// the old one as <index>_ccold, its TOAST table's too), which are dropped
// by the same attempt or, failing that, by the next pass. (A client that
// goes away does not stop a rebuild: its session finishes it.)
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "processor/partitions.hpp"

namespace processor {

/// Attempts at packing one partition at most. Each is counted before its
/// rebuild starts, so that one cut short counts too.
constexpr int kPackAttempts = 3;

/// One partition packed, or tried.
struct PackedPartition {
  std::string name;
  int attempt = 0;  ///< 1 to kPackAttempts
  std::uint64_t bytes_before = 0;
  std::uint64_t bytes_after = 0;  ///< 0 when it failed
  double seconds = 0;
  std::string error;  ///< why it failed (recorded); empty when packed
};

/// What one packing pass did.
struct PackPass {
  bool ran = false;                       ///< false: another session holds the partition lock
  std::vector<std::string> cut_rebuilds;  ///< invalid copies of indexes dropped
  std::optional<PackedPartition> packed;  ///< the partition packed or tried
};

/// Under the partition lock (skipped while another session holds it):
/// drops the invalid copies rebuilds cut short left on partitions of events
/// and their TOAST tables, then packs the newest sealed partition that is
/// neither packed nor out of attempts, of at most settings.pack_max_bytes,
/// and small enough that twice its rebuild at a slow pace ends before the
/// partitions made ahead run out (no processor makes more meanwhile). An
/// SQL error of the rebuild is recorded with the partition (pack_error),
/// unless `interrupted` is set (a shutdown cancelled it): then it is thrown.
/// A lost connection is thrown. Throws pqxx errors.
PackPass run_pack(pqxx::connection& conn, const PartitionSettings& settings,
                  const std::atomic<bool>& interrupted);

}  // namespace processor
