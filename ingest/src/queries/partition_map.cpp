#include "queries/partition_map.hpp"

#include <pqxx/pqxx>

#include <algorithm>

#include "pipeline/timestamp.hpp"

namespace ingest {
namespace {

// Each attached partition's bounds (parsed from its FOR VALUES clause, as
// the processor does) and, once sealed, its range of ts; the catalog and
// one small table, no partition is read.
constexpr const char* kMapSql = R"sql(
SELECT from_micros, p.to_micros, s.partition IS NOT NULL,
       (extract(epoch FROM s.ts_min) * 1000000)::bigint,
       (extract(epoch FROM s.ts_max) * 1000000)::bigint
FROM (SELECT c.relname,
             (extract(epoch FROM (regexp_match(b.bound, 'FROM \(''([^'']*)''\)'))[1]::timestamptz)
              * 1000000)::bigint AS from_micros,
             (extract(epoch FROM (regexp_match(b.bound, 'TO \(''([^'']*)''\)'))[1]::timestamptz)
              * 1000000)::bigint AS to_micros
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
      WHERE i.inhparent = 'events'::regclass) p
LEFT JOIN sealed_partitions s ON s.partition = p.relname AND s.to_micros = p.to_micros
ORDER BY p.to_micros
)sql";

std::string literal(std::int64_t micros) {
  return "'" + pipeline::format_rfc3339(pipeline::UtcTimestamp{micros}) + "'";
}

}  // namespace

std::vector<PartitionSpan> load_partition_map(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  std::vector<PartitionSpan> spans;
  for (const auto& row : tx.exec(kMapSql)) {
    PartitionSpan span;
    if (!row[0].is_null()) span.from_micros = row[0].as<std::int64_t>();
    span.to_micros = row[1].as<std::int64_t>();
    span.sealed = row[2].as<bool>();
    if (!row[3].is_null()) span.ts_min = row[3].as<std::int64_t>();
    if (!row[4].is_null()) span.ts_max = row[4].as<std::int64_t>();
    spans.push_back(span);
  }
  return spans;
}

std::vector<std::size_t> sealed_candidates(const std::vector<PartitionSpan>& spans,
                                           const TsWindow& window, bool descending) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const PartitionSpan& s = spans[i];
    if (!s.sealed || !s.ts_min || !s.ts_max) continue;  // not sealed (read always), or empty
    if (window.lo && *s.ts_max < *window.lo) continue;
    if (window.hi && *s.ts_min > *window.hi) continue;
    out.push_back(i);
  }
  std::stable_sort(out.begin(), out.end(), [&](std::size_t a, std::size_t b) {
    return descending ? *spans[a].ts_max > *spans[b].ts_max : *spans[a].ts_min < *spans[b].ts_min;
  });
  return out;
}

std::size_t candidates_reaching(const std::vector<PartitionSpan>& spans,
                                const std::vector<std::size_t>& candidates,
                                std::int64_t last_micros, bool descending) {
  // Sorted by the bound that reaches furthest: a prefix of them.
  std::size_t n = 0;
  while (n < candidates.size() && (descending ? *spans[candidates[n]].ts_max >= last_micros
                                              : *spans[candidates[n]].ts_min <= last_micros))
    ++n;
  return n;
}

std::string stored_at_condition(const std::vector<PartitionSpan>& spans,
                                const std::vector<std::size_t>& candidates, std::size_t count) {
  std::vector<bool> read(spans.size());
  for (std::size_t i = 0; i < spans.size(); ++i) read[i] = !spans[i].sealed;
  for (std::size_t i = 0; i < std::min(count, candidates.size()); ++i) read[candidates[i]] = true;
  if (std::all_of(read.begin(), read.end(), [](bool r) { return r; })) return "";
  std::string out;
  const auto add = [&](const std::optional<std::int64_t>& from,
                       const std::optional<std::int64_t>& to) {
    std::string range;
    if (from) range = "stored_at >= " + literal(*from);
    if (from && to) range += " AND ";
    if (to) range += "stored_at < " + literal(*to);
    out += (out.empty() ? "(" : " OR (") + range + ")";
  };
  std::size_t i = 0;
  while (i < spans.size()) {
    if (!read[i]) {
      ++i;
      continue;
    }
    const std::optional<std::int64_t> from = spans[i].from_micros;
    while (i + 1 < spans.size() && read[i + 1]) ++i;
    // A run that reaches the last partition goes on past it.
    if (i + 1 == spans.size()) {
      add(from, std::nullopt);
    } else {
      add(from, spans[i].to_micros);
    }
    ++i;
  }
  if (!read.back()) add(spans.back().to_micros, std::nullopt);
  return "(" + out + ")";
}

}  // namespace ingest
