#pragma once
// Sealed partitions packed (migrations/0009). A sealed partition only ever
// loses rows, so its b-trees never split again: rebuilt full (fillfactor
// 100), they keep that size for the rest of its life. The rebuild is REINDEX
// TABLE CONCURRENTLY, which takes no lock that stops inserts or queries;
// cut short (its connection lost, a timeout, PostgreSQL killed), it leaves
// an invalid copy of an index behind (<index>_ccnew, or the old one as
// <index>_ccold), which the next pass drops.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "processor/partitions.hpp"

namespace processor {

/// Drops the invalid indexes that a REINDEX CONCURRENTLY of a partition of
/// events left when it was cut short. Run by the processor that holds the
/// partition lock (so no rebuild of ours is under way). Returns their names.
/// Throws pqxx errors.
std::vector<std::string> drop_cut_rebuilds(pqxx::connection& conn);

/// Run by the processor that holds the partition lock: packs the newest
/// sealed partition of `partitions` (as list_partitions returns them) that
/// is neither packed nor failed, of at most `max_bytes` (0: none), and
/// small enough that its rebuild, at a slow machine's pace, ends well before
/// the partitions made ahead run out (no processor makes more while the
/// rebuild holds the partition lock). An SQL
/// error of the rebuild is recorded with the partition (and its leftovers
/// dropped); a lost connection is thrown (the next pass tries again).
std::optional<PackedPartition> pack_next_partition(pqxx::connection& conn,
                                                   const std::vector<Partition>& partitions,
                                                   std::uint64_t max_bytes);

}  // namespace processor
