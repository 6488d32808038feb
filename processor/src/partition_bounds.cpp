#include "partition_bounds.hpp"

#include <pqxx/pqxx>

#include <algorithm>
#include <cstdlib>
#include <utility>

namespace processor {
namespace {

// This transaction's now() in microseconds; the version of the partitions
// (partition_bounds.hpp: their oids and xmins, in a hash of constant size
// whatever the partitions); and, only when the version is not $1, the
// partitions' ends in microseconds (comma-separated; MAXVALUE and infinite
// ends left out), parsed from their FOR VALUES clauses (a timestamptz
// literal with its offset, whatever the session's TimeZone).
constexpr const char* kNowAndBounds = R"sql(
WITH v AS (
  SELECT md5(coalesce(string_agg(inhrelid::text || '.' || xmin::text, ',' ORDER BY inhrelid),
                      '')) AS version
  FROM pg_inherits WHERE inhparent = 'events'::regclass)
SELECT (extract(epoch FROM now()) * 1000000)::bigint, version,
       CASE WHEN version <> $1 THEN (
         SELECT coalesce(string_agg((extract(epoch FROM t) * 1000000)::bigint::text, ','), '')
         FROM (SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                    'TO \(''([^'']*)''\)'))[1]::timestamptz AS t
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'events'::regclass) e
         WHERE isfinite(t)) END
FROM v
)sql";

// Matches no version (an MD5 in hex).
constexpr const char* kUnread = "-";

}  // namespace

PartitionBounds::PartitionBounds() : version_(kUnread) {}

void PartitionBounds::prepare(pqxx::connection& conn) {
  conn.prepare("partition_now_and_bounds", kNowAndBounds);
}

bool PartitionBounds::near_end(pqxx::work& tx, double window_seconds) {
  const pqxx::row row = tx.exec_prepared1("partition_now_and_bounds", version_);
  const auto now = row[0].as<std::int64_t>();
  if (!row[2].is_null()) {
    // Parsed whole before the version is taken: a throw keeps neither.
    std::vector<std::int64_t> ends;
    const std::string text = row[2].as<std::string>();
    for (std::size_t from = 0; from < text.size();) {
      std::size_t comma = text.find(',', from);
      if (comma == std::string::npos) comma = text.size();
      ends.push_back(std::stoll(text.substr(from, comma - from)));
      from = comma + 1;
    }
    ends_micros_ = std::move(ends);
    version_ = row[1].as<std::string>();
    ++reads_;
  }
  const auto window_micros = static_cast<std::int64_t>(window_seconds * 1e6);
  return std::any_of(ends_micros_.begin(), ends_micros_.end(),
                     [&](std::int64_t end) { return std::llabs(end - now) < window_micros; });
}

}  // namespace processor
