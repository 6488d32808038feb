#include "packing.hpp"

#include <pqxx/pqxx>

#include <chrono>
#include <map>

#include "pipeline/logging.hpp"

namespace processor {
namespace {

// Invalid indexes on partitions of events named as REINDEX CONCURRENTLY
// names its copies: <index>_ccnew (the new one, not finished) or
// <index>_ccold (the old one, swapped out but not dropped), with a digit
// when the name was taken.
constexpr const char* kCutRebuildsSql = R"sql(
SELECT x.indexrelid::regclass::text
FROM pg_index x
JOIN pg_class ic ON ic.oid = x.indexrelid
JOIN pg_inherits i ON i.inhrelid = x.indrelid
WHERE i.inhparent = 'events'::regclass AND NOT x.indisvalid
  AND ic.relname ~ '_cc(new|old)[0-9]*$'
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

}  // namespace

std::vector<std::string> drop_cut_rebuilds(pqxx::connection& conn) {
  std::vector<std::string> names;
  pqxx::nontransaction tx(conn);
  for (const auto& row : tx.exec(kCutRebuildsSql)) names.push_back(row[0].as<std::string>());
  // Not in a transaction block, and no lock that stops inserts or queries.
  for (const auto& name : names) tx.exec("DROP INDEX CONCURRENTLY IF EXISTS " + name);
  return names;
}

std::optional<PackedPartition> pack_next_partition(pqxx::connection& conn,
                                                   const std::vector<Partition>& partitions,
                                                   std::uint64_t max_bytes) {
  if (max_bytes == 0) return std::nullopt;
  std::map<std::string, std::int64_t> waiting;  // sealed, neither packed nor failed
  {
    pqxx::nontransaction tx(conn);
    for (const auto& row : tx.exec("SELECT partition, to_micros FROM sealed_partitions "
                                   "WHERE packed_at IS NULL AND pack_error IS NULL"))
      waiting[row[0].as<std::string>()] = row[1].as<std::int64_t>();
  }
  if (waiting.empty() || partitions.empty()) return std::nullopt;
  const double ahead_seconds =
      static_cast<double>(partitions.back().to_micros - database_now_micros(conn)) / 1e6;
  // The newest first: it lives the longest.
  const Partition* next = nullptr;
  for (auto it = partitions.rbegin(); it != partitions.rend() && next == nullptr; ++it) {
    const auto found = waiting.find(it->name);
    const double rebuild_seconds = static_cast<double>(it->bytes) / kSlowRebuildBytesPerSecond;
    if (found != waiting.end() && found->second == it->to_micros && !it->detach_pending &&
        it->bytes <= max_bytes && 2 * rebuild_seconds + 1 < ahead_seconds)
      next = &*it;
  }
  if (next == nullptr) return std::nullopt;

  PackedPartition packed;
  packed.name = next->name;
  packed.bytes_before = total_bytes(conn, next->name);
  const auto started = std::chrono::steady_clock::now();
  try {
    pqxx::nontransaction tx(conn);
    std::vector<std::string> indexes;
    for (const auto& row : tx.exec_params(kBtreesSql, tx.quote_name(next->name)))
      indexes.push_back(row[0].as<std::string>());
    // For the rebuild only: no new row can split a page of a sealed
    // partition. Takes a SHARE UPDATE EXCLUSIVE lock, as the rebuild does.
    for (const auto& index : indexes) tx.exec("ALTER INDEX " + index + " SET (fillfactor = 100)");
    tx.exec("REINDEX TABLE CONCURRENTLY " + tx.quote_name(next->name));
  } catch (const pqxx::sql_error& e) {
    if (!conn.is_open()) throw;
    packed.error = pipeline::log::first_line(e.what());
    drop_cut_rebuilds(conn);
  }
  packed.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (packed.error.empty()) packed.bytes_after = total_bytes(conn, next->name);
  pqxx::nontransaction tx(conn);
  if (packed.error.empty()) {
    tx.exec_params(
        "UPDATE sealed_partitions SET packed_at = now(), bytes_before_pack = $2, "
        "bytes_after_pack = $3 WHERE partition = $1",
        packed.name, packed.bytes_before, packed.bytes_after);
  } else {
    tx.exec_params(
        "UPDATE sealed_partitions SET pack_error = $2, bytes_before_pack = $3 "
        "WHERE partition = $1",
        packed.name, packed.error, packed.bytes_before);
  }
  return packed;
}

}  // namespace processor
