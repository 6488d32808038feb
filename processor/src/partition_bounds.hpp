#pragma once

// Whether a batch's transaction begins near the end of a partition of events
// (then its keys are locked before they are looked up: batch_sql.hpp,
// kLockKeys), with the partitions' ends read from the catalog only when they
// changed. Reading them deparses and parses every partition's bound: 0.8 ms
// of PostgreSQL per batch at 53 partitions (make bench-growth, 50 M rows),
// growing with the partitions; the version checked instead reads the
// partitions' catalog rows and nothing else.
//
// The version is each partition's oid with the xmin of its pg_inherits row.
// A partition's bound is set when that row is written (CREATE ... PARTITION
// OF, ATTACH) and no statement changes it in place: a bound that changes is
// a partition detached (its row deleted, or rewritten first by DETACH
// CONCURRENTLY) and attached again (a new row). Whatever transaction does
// it writes rows whose xmin is its own, which no row read before it
// committed carries: the version differs, even for a partition detached and
// attached again with another bound in one transaction.
#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/connection>
#include <pqxx/transaction>

namespace processor {

class PartitionBounds {
 public:
  PartitionBounds();
  /// Prepares the statement near_end() runs on this connection.
  static void prepare(pqxx::connection& conn);
  /// Whether now() of `tx` lies within `window_seconds` of the end of a
  /// partition of events. Throws pqxx errors.
  bool near_end(pqxx::work& tx, double window_seconds);
  /// How often the ends were read from the catalog (not just the version).
  std::uint64_t reads() const { return reads_; }

 private:
  std::string version_;                    ///< of the ends held (kUnread: none yet)
  std::vector<std::int64_t> ends_micros_;  ///< finite ends (not MAXVALUE)
  std::uint64_t reads_ = 0;
};

}  // namespace processor
