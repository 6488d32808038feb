#include "sealed_ranges.hpp"

#include <pqxx/pqxx>

#include <map>

#include "processor/batch_writer.hpp"

namespace processor {

bool partition_sealed(pqxx::connection& conn, std::int64_t to_micros, std::int64_t margin_micros,
                      std::int64_t now_micros) {
  if (to_micros + margin_micros > now_micros) return false;
  pqxx::nontransaction tx(conn);
  return tx
      .exec_params(
          "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
          "AND datname = current_database() AND xact_start < 'epoch'::timestamptz + $1 * interval "
          "'1 microsecond')",
          to_micros)[0][0]
      .as<bool>();
}

std::vector<const Partition*> sealed_without_row(pqxx::connection& conn, const std::string& table,
                                                 const std::vector<Partition>& partitions,
                                                 std::int64_t margin_micros) {
  std::map<std::string, std::int64_t> rows;
  std::vector<std::string> names;
  std::vector<std::string> ends;
  {
    pqxx::nontransaction tx(conn);
    for (const auto& row : tx.exec("SELECT partition, to_micros FROM " + table))
      rows[row[0].as<std::string>()] = row[1].as<std::int64_t>();
    for (const Partition& p : partitions) {
      names.push_back(p.name);
      ends.push_back(std::to_string(p.to_micros));
    }
    // Those of partitions dropped (or, by hand, attached with other bounds).
    tx.exec_params("DELETE FROM " + table +
                       " WHERE (partition, to_micros) NOT IN "
                       "(SELECT * FROM unnest($1::text[], $2::bigint[]))",
                   to_pg_array(names), to_pg_array(ends));
  }
  std::vector<const Partition*> out;
  const std::int64_t now = database_now_micros(conn);
  for (const Partition& p : partitions) {
    if (p.detach_pending) continue;
    const auto it = rows.find(p.name);
    if (it != rows.end() && it->second == p.to_micros) continue;
    // Sorted by end: this one and every later one may still get rows.
    if (!partition_sealed(conn, p.to_micros, margin_micros, now)) break;
    out.push_back(&p);
  }
  return out;
}

std::vector<std::string> record_sealed_ranges(pqxx::connection& conn,
                                              const std::vector<Partition>& partitions,
                                              std::int64_t margin_micros) {
  std::vector<std::string> made;
  for (const Partition* p :
       sealed_without_row(conn, "sealed_partitions", partitions, margin_micros)) {
    // Two descents of its index on ts (the name is ours: events_p...).
    pqxx::work tx(conn);
    tx.exec_params(
        "INSERT INTO sealed_partitions (partition, to_micros, ts_min, ts_max) "
        "SELECT $1, $2, min(ts), max(ts) FROM " +
            tx.quote_name(p->name) + " ON CONFLICT (partition) DO NOTHING",
        p->name, p->to_micros);
    tx.commit();
    made.push_back(p->name);
  }
  return made;
}

}  // namespace processor
