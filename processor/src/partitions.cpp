#include "processor/partitions.hpp"

#include <pqxx/pqxx>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "key_filters.hpp"
#include "pipeline/fault.hpp"
#include "pipeline/logging.hpp"
#include "pipeline/timestamp.hpp"
#include "sealed_ranges.hpp"

namespace processor {
namespace {

namespace log = pipeline::log;

// pg_advisory_lock key of partition work ("evpart" in ASCII).
constexpr std::int64_t kPartitionLockKey = 0x657670617274;

// The bounds of each attached partition, parsed from its FOR VALUES clause
// (a timestamptz literal with its offset, whatever the session's TimeZone).
constexpr const char* kListSql = R"sql(
SELECT relname, detach_pending, bytes,
       (extract(epoch FROM (regexp_match(bound, 'FROM \(''([^'']*)''\)'))[1]::timestamptz)
        * 1000000)::bigint AS from_micros,
       (extract(epoch FROM (regexp_match(bound, 'TO \(''([^'']*)''\)'))[1]::timestamptz)
        * 1000000)::bigint AS to_micros
FROM (SELECT c.relname, i.inhdetachpending AS detach_pending,
             pg_total_relation_size(c.oid) AS bytes,
             pg_get_expr(c.relpartbound, c.oid) AS bound
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'events'::regclass) p
ORDER BY to_micros
)sql";

// Tables of ours left detached by a pass that was cut between DETACH and
// DROP (they hold no rows anyone can read).
constexpr const char* kOrphansSql = R"sql(
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind = 'r' AND NOT c.relispartition
  AND (c.relname LIKE 'events\_p%' OR c.relname = 'events_legacy')
)sql";

std::string literal(std::int64_t micros) {
  return "'" + pipeline::format_rfc3339(pipeline::UtcTimestamp{micros}) + "'";
}

std::int64_t interval_micros(std::chrono::milliseconds interval) {
  return std::max<std::int64_t>(1000, interval.count() * 1000);
}

// Creates, fills the constraints of and attaches one partition, in one
// transaction: cut anywhere, nothing of it remains. ATTACH takes only a
// SHARE UPDATE EXCLUSIVE lock on events: inserts and queries go on.
void create_partition(pqxx::connection& conn, const std::string& name, std::int64_t from,
                      std::int64_t to) {
  pqxx::work tx(conn);
  tx.exec("SET LOCAL lock_timeout = '5s'");
  tx.exec("CREATE TABLE " + name +
          " (LIKE events INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING STORAGE"
          " INCLUDING COMPRESSION)");
  tx.exec("CREATE UNIQUE INDEX " + name + "_key ON " + name + " (key_hash)");
  pipeline::fault::crash_point("processor.partition_before_attach");
  tx.exec("ALTER TABLE events ATTACH PARTITION " + name + " FOR VALUES FROM (" + literal(from) +
          ") TO (" + literal(to) + ")");
  tx.commit();
}

// DETACH ... CONCURRENTLY (no lock that stops inserts or queries; it waits
// for the transactions that may still read the partition), then DROP. Each
// runs on its own; one cut short is finished by the next pass.
void drop_partition(pqxx::connection& conn, const Partition& partition) {
  pqxx::nontransaction tx(conn);
  if (partition.detach_pending) {
    tx.exec("ALTER TABLE events DETACH PARTITION " + partition.name + " FINALIZE");
  } else {
    tx.exec("ALTER TABLE events DETACH PARTITION " + partition.name + " CONCURRENTLY");
  }
  pipeline::fault::crash_point("processor.retention_after_detach_before_drop");
  tx.exec("DROP TABLE " + partition.name);
}

void drop_orphans(pqxx::connection& conn) {
  std::vector<std::string> orphans;
  {
    pqxx::nontransaction tx(conn);
    for (const auto& row : tx.exec(kOrphansSql)) orphans.push_back(row[0].as<std::string>());
  }
  for (const std::string& name : orphans) {
    pqxx::nontransaction tx(conn);
    tx.exec("DROP TABLE IF EXISTS " + name);
    log::warn("partition_orphan_dropped", {{"partition", name}});
  }
}

// The partitions to drop: past retention by age, then the oldest while the
// rest take more than max_bytes. Never one that reaches past now.
void choose_drops(const std::vector<Partition>& partitions, const PartitionSettings& settings,
                  std::int64_t now, std::vector<const Partition*>& by_age,
                  std::vector<const Partition*>& by_size) {
  std::uint64_t total = 0;
  for (const Partition& p : partitions) total += p.bytes;
  for (const Partition& p : partitions) {
    if (p.to_micros > now) break;  // sorted by end: this one and the rest are being written
    if (settings.retention.count() > 0 && p.to_micros <= now - settings.retention.count() * 1000) {
      by_age.push_back(&p);
    } else if (settings.max_bytes > 0 && total > settings.max_bytes) {
      by_size.push_back(&p);
    } else {
      break;  // oldest first: a younger one is never dropped before it
    }
    total -= p.bytes;
  }
}

}  // namespace

std::int64_t database_now_micros(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  return tx.exec("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")[0][0]
      .as<std::int64_t>();
}

std::int64_t next_boundary(std::int64_t micros, std::chrono::milliseconds interval) {
  const std::int64_t step = interval_micros(interval);
  std::int64_t floor = micros / step * step;
  if (floor > micros) floor -= step;  // negative times round down too
  return floor + step;
}

std::string partition_name(std::int64_t micros) {
  const std::time_t seconds = static_cast<std::time_t>(micros / 1'000'000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "events_p%Y%m%d_%H%M%S", &utc);
  return text;
}

std::vector<Partition> list_partitions(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  std::vector<Partition> out;
  for (const auto& row : tx.exec(kListSql)) {
    Partition p;
    p.name = row[0].as<std::string>();
    p.detach_pending = row[1].as<bool>();
    p.bytes = row[2].as<std::uint64_t>();
    if (!row[3].is_null()) p.from_micros = row[3].as<std::int64_t>();
    p.to_micros = row[4].as<std::int64_t>();
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<std::string> ensure_partitions(pqxx::connection& conn,
                                           const PartitionSettings& settings) {
  const std::int64_t now = database_now_micros(conn);
  const std::int64_t step = interval_micros(settings.interval);
  const std::int64_t horizon = now + settings.ahead * step;
  const auto partitions = list_partitions(conn);
  // From the newest partition's end (sorted by end); without any (a database
  // made by hand), from the bound before now.
  std::int64_t from = partitions.empty() ? next_boundary(now, settings.interval) - step
                                         : partitions.back().to_micros;
  std::vector<std::string> created;
  while (from < horizon) {
    // After a long stop, one partition spans the gap up to now's bound
    // rather than one per interval that passed.
    const std::int64_t to = next_boundary(std::max(from, now), settings.interval);
    const std::string name = partition_name(from);
    create_partition(conn, name, from, to);
    created.push_back(name);
    from = to;
  }
  return created;
}

bool under_partition_lock(pqxx::connection& conn, const std::function<void()>& work) {
  {
    pqxx::nontransaction tx(conn);
    if (!tx.exec("SELECT pg_try_advisory_lock(" + std::to_string(kPartitionLockKey) + ")")[0][0]
             .as<bool>())
      return false;
  }
  const auto unlock = [&] {
    pqxx::nontransaction tx(conn);
    tx.exec("SELECT pg_advisory_unlock(" + std::to_string(kPartitionLockKey) + ")");
  };
  try {
    work();
  } catch (...) {
    try {
      unlock();
    } catch (...) {  // NOLINT(bugprone-empty-catch): the first error is the one to report
    }
    throw;
  }
  unlock();
  return true;
}

RetentionPass run_retention(pqxx::connection& conn, const PartitionSettings& settings,
                            bool build_filters) {
  const auto started = std::chrono::steady_clock::now();
  RetentionPass pass;
  pass.ran = under_partition_lock(conn, [&] {
    drop_orphans(conn);
    pass.created = ensure_partitions(conn, settings);
    const auto partitions = list_partitions(conn);
    std::vector<const Partition*> by_age;
    std::vector<const Partition*> by_size;
    choose_drops(partitions, settings, database_now_micros(conn), by_age, by_size);
    for (const Partition* p : by_age) {
      drop_partition(conn, *p);
      pass.dropped_by_age.push_back(p->name);
    }
    for (const Partition* p : by_size) {
      drop_partition(conn, *p);
      pass.dropped_by_size.push_back(p->name);
    }
    // A detach cut short of a partition not due yet (never by this code,
    // but by hand) is finished too: it is no partition anyone can read.
    for (const Partition& p : partitions) {
      const bool dropped =
          std::any_of(by_age.begin(), by_age.end(), [&](const Partition* d) { return d == &p; }) ||
          std::any_of(by_size.begin(), by_size.end(), [&](const Partition* d) { return d == &p; });
      if (p.detach_pending && !dropped) {
        drop_partition(conn, p);
        pass.dropped_by_age.push_back(p.name);
      }
    }
    pass.sealed =
        record_sealed_ranges(conn, list_partitions(conn), settings.seal_margin.count() * 1000);
    if (build_filters)
      pass.filtered = build_key_filters(conn, settings.seal_margin.count() * 1000,
                                        settings.key_filter_max_bytes);
    pass.partitions = list_partitions(conn);
    for (const Partition& p : pass.partitions) pass.bytes += p.bytes;
  });
  if (!pass.ran) return pass;
  pass.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return pass;
}

}  // namespace processor
