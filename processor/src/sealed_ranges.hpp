#pragma once
// Sealed partitions and their range of event time. A partition of events is
// sealed once no transaction can add rows to it any more: rows go to the
// partition of their transaction's now(), so once its end is a margin in the
// past and no session has a transaction that began before that end, it only
// ever loses rows (dropped whole, or a row moved out by a replace). What is
// true of its rows then stays true: the key filters (key_filters.hpp) and
// the range of ts recorded here, which GET /events uses to read only the
// partitions that can hold a page (migrations/0008).
#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "processor/partitions.hpp"

namespace processor {

/// Whether the partition that ends at `to_micros` is sealed at `now_micros`
/// (the database's clock): its end at least `margin_micros` in the past and
/// no other session of this database in a transaction that began before it.
/// (Sessions of other roles show no xact_start to a role without
/// pg_read_all_stats; the events table's writers are the processors, under
/// this role.) Throws pqxx errors.
bool partition_sealed(pqxx::connection& conn, std::int64_t to_micros, std::int64_t margin_micros,
                      std::int64_t now_micros);

/// The sealed partitions of `partitions` (sorted by end, as list_partitions
/// returns them) that `table` (a row per partition: partition, to_micros)
/// has no row for, oldest first, up to the first partition not sealed;
/// first deletes `table`'s rows of partitions no longer attached. Throws
/// pqxx errors.
std::vector<const Partition*> sealed_without_row(pqxx::connection& conn, const std::string& table,
                                                 const std::vector<Partition>& partitions,
                                                 std::int64_t margin_micros);

/// Run by the processor that holds the partition lock: records the range of
/// ts of each sealed partition of `partitions` (sorted by end, as
/// list_partitions returns them) that has none, oldest first, and deletes
/// the rows of partitions no longer attached. Returns the partitions
/// recorded now. Throws pqxx errors.
std::vector<std::string> record_sealed_ranges(pqxx::connection& conn,
                                              const std::vector<Partition>& partitions,
                                              std::int64_t margin_micros);

}  // namespace processor
