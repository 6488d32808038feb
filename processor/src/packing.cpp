#include "packing.hpp"

#include <pqxx/pqxx>

#include <chrono>
#include <map>

#include "pipeline/logging.hpp"

namespace processor {
namespace {

// Invalid indexes on partitions of events and on their TOAST tables, named
// as REINDEX CONCURRENTLY names its copies: <index>_ccnew (the new one, not
// finished) or <index>_ccold (the old one, swapped out but not dropped),
// with a digit when the name was taken. Neither is attached to an index of
// events.
constexpr const char* kCutRebuildsSql = R"sql(
WITH parts AS (
  SELECT c.oid, c.reltoastrelid FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = 'events'::regclass
)
SELECT x.indexrelid::regclass::text
FROM pg_index x
JOIN pg_class ic ON ic.oid = x.indexrelid
WHERE (x.indrelid IN (SELECT oid FROM parts) OR x.indrelid IN (SELECT reltoastrelid FROM parts))
  AND NOT x.indisvalid AND ic.relname ~ '_cc(new|old)[0-9]*$'
)sql";

// The b-trees of a partition (its BRIN on stored_at has no fillfactor).
constexpr const char* kBtreesSql = R"sql(
SELECT x.indexrelid::regclass::text
FROM pg_index x
JOIN pg_class ic ON ic.oid = x.indexrelid
JOIN pg_am a ON a.oid = ic.relam
WHERE x.indrelid = $1::regclass AND x.indisvalid AND a.amname = 'btree'
)sql";

// A rebuild's pace on a slow machine (this project's 2-core one rebuilt
// 780 MB in 8.9 s): while it runs, the pass holds the partition lock and
// no processor makes partitions ahead, so a partition is packed only if
// twice its rebuild at this pace ends before the partitions made ahead run
// out.
constexpr double kSlowRebuildBytesPerSecond = 20.0 * (1 << 20);

std::uint64_t total_bytes(pqxx::connection& conn, const std::string& table) {
  pqxx::nontransaction tx(conn);
  return tx.exec_params1("SELECT pg_total_relation_size($1::regclass)", tx.quote_name(table))[0]
      .as<std::uint64_t>();
}

std::vector<std::string> drop_cut_rebuilds(pqxx::connection& conn) {
  std::vector<std::string> names;
  pqxx::nontransaction tx(conn);
  for (const auto& row : tx.exec(kCutRebuildsSql)) names.push_back(row[0].as<std::string>());
  // Not in a transaction block, and no lock that stops inserts or queries.
  for (const auto& name : names) tx.exec("DROP INDEX CONCURRENTLY IF EXISTS " + name);
  return names;
}

// The partition to pack next, with its attempts so far; nullptr: none.
const Partition* choose(pqxx::connection& conn, const std::vector<Partition>& partitions,
                        const PartitionSettings& settings, int& attempts) {
  std::map<std::string, std::pair<std::int64_t, int>> waiting;  // to_micros, attempts
  {
    pqxx::nontransaction tx(conn);
    for (const auto& row :
         tx.exec_params("SELECT partition, to_micros, pack_attempts FROM sealed_partitions "
                        "WHERE packed_at IS NULL AND pack_attempts < $1",
                        kPackAttempts))
      waiting[row[0].as<std::string>()] = {row[1].as<std::int64_t>(), row[2].as<int>()};
  }
  if (waiting.empty() || partitions.empty()) return nullptr;
  const double ahead_seconds =
      static_cast<double>(partitions.back().to_micros - database_now_micros(conn)) / 1e6;
  // The newest first: it lives the longest.
  for (auto it = partitions.rbegin(); it != partitions.rend(); ++it) {
    const auto found = waiting.find(it->name);
    const double rebuild_seconds = static_cast<double>(it->bytes) / kSlowRebuildBytesPerSecond;
    if (found != waiting.end() && found->second.first == it->to_micros && !it->detach_pending &&
        it->bytes <= settings.pack_max_bytes && 2 * rebuild_seconds + 1 < ahead_seconds) {
      attempts = found->second.second;
      return &*it;
    }
  }
  return nullptr;
}

PackedPartition pack(pqxx::connection& conn, const Partition& partition, int attempts,
                     const std::atomic<bool>& interrupted) {
  PackedPartition packed;
  packed.name = partition.name;
  packed.attempt = attempts + 1;
  packed.bytes_before = partition.bytes;  // as listed just now
  {
    pqxx::nontransaction tx(conn);
    tx.exec_params(
        "UPDATE sealed_partitions SET pack_attempts = pack_attempts + 1, bytes_before_pack = $2 "
        "WHERE partition = $1",
        packed.name, packed.bytes_before);
  }
  const auto started = std::chrono::steady_clock::now();
  try {
    pqxx::nontransaction tx(conn);
    std::vector<std::string> indexes;
    for (const auto& row : tx.exec_params(kBtreesSql, tx.quote_name(partition.name)))
      indexes.push_back(row[0].as<std::string>());
    // For the rebuild only: no new row can split a page of a sealed
    // partition. Takes a SHARE UPDATE EXCLUSIVE lock on the index alone.
    for (const auto& index : indexes) tx.exec("ALTER INDEX " + index + " SET (fillfactor = 100)");
    if (interrupted.load()) throw pqxx::sql_error("interrupted before the rebuild");
    tx.exec("REINDEX TABLE CONCURRENTLY " + tx.quote_name(partition.name));
  } catch (const pqxx::sql_error& e) {
    if (!conn.is_open()) throw;
    drop_cut_rebuilds(conn);
    if (interrupted.load()) throw;
    packed.error = pipeline::log::first_line(e.what());
  }
  packed.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (packed.error.empty()) packed.bytes_after = total_bytes(conn, partition.name);
  pqxx::nontransaction tx(conn);
  if (packed.error.empty()) {
    tx.exec_params(
        "UPDATE sealed_partitions SET packed_at = now(), bytes_after_pack = $2, pack_error = NULL "
        "WHERE partition = $1",
        packed.name, packed.bytes_after);
  } else {
    tx.exec_params("UPDATE sealed_partitions SET pack_error = $2 WHERE partition = $1", packed.name,
                   packed.error);
  }
  return packed;
}

}  // namespace

PackPass run_pack(pqxx::connection& conn, const PartitionSettings& settings,
                  const std::atomic<bool>& interrupted) {
  PackPass pass;
  if (settings.pack_max_bytes == 0) return pass;
  pass.ran = under_partition_lock(conn, [&] {
    pass.cut_rebuilds = drop_cut_rebuilds(conn);
    int attempts = 0;
    const std::vector<Partition> partitions = list_partitions(conn);
    if (const Partition* next = choose(conn, partitions, settings, attempts)) {
      pass.packed = pack(conn, *next, attempts, interrupted);
    }
  });
  return pass;
}

}  // namespace processor
