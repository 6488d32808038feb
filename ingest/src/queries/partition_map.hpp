#pragma once
// Which partitions of events a page of GET /events reads. Events are
// partitioned by arrival (stored_at) and a page is ordered by event time
// (ts), so a query of the parent table merges the first rows of every
// partition: its cost grows with the partitions (measured at 50 M rows in 38
// partitions: p99 17.9 ms on 4 connections). Once a partition is sealed (no
// transaction can add rows to it: processor/src/sealed_ranges.hpp), the
// range of ts of its rows is recorded (sealed_partitions, migrations/0008),
// and a page reads it only when that range can reach the page:
//
//   1. the partitions not sealed, always, and the first sealed one in the
//      page's order (by ts_max, newest first, for order=desc; by ts_min for
//      asc), of those whose range meets the query's window of ts;
//   2. with a full page, every sealed partition whose range reaches the
//      page's last row as well, and the page again if there is one more
//      (no row of any other partition can come before that row); with a
//      page not full, more of them (8, then all), and again.
//
// The answer is the one a query of every partition gives; a partition
// sealed since the map was read is read as not sealed.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/connection>

namespace ingest {

/// One attached partition of events.
struct PartitionSpan {
  std::optional<std::int64_t> from_micros;  ///< stored_at; nullopt: MINVALUE
  std::int64_t to_micros = 0;
  bool sealed = false;
  /// The range of ts of a sealed partition's rows; nullopt: it has none.
  std::optional<std::int64_t> ts_min;
  std::optional<std::int64_t> ts_max;
};

/// The attached partitions, oldest first. Throws pqxx errors.
std::vector<PartitionSpan> load_partition_map(pqxx::connection& conn);

/// Inclusive bounds of ts a query's rows lie within; nullopt: open.
struct TsWindow {
  std::optional<std::int64_t> lo;
  std::optional<std::int64_t> hi;
};

/// The sealed partitions with rows in `window`, as indexes into `spans`, in
/// the order a page reaches them: by ts_max descending for `descending`,
/// else by ts_min ascending.
std::vector<std::size_t> sealed_candidates(const std::vector<PartitionSpan>& spans,
                                           const TsWindow& window, bool descending);

/// How many of `candidates` (in their order) a page must read once its last
/// row has ts `last_micros`: those whose range reaches it.
std::size_t candidates_reaching(const std::vector<PartitionSpan>& spans,
                                const std::vector<std::size_t>& candidates,
                                std::int64_t last_micros, bool descending);

/// The condition on stored_at that reads the partitions not sealed, the
/// first `count` of `candidates`, and anything after the last partition (one
/// attached since the map was read); "" when that is every partition.
std::string stored_at_condition(const std::vector<PartitionSpan>& spans,
                                const std::vector<std::size_t>& candidates, std::size_t count);

}  // namespace ingest
