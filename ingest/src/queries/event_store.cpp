#include "ingest/event_store.hpp"

#include <pqxx/pqxx>

#include "pipeline/cloudevents.hpp"
#include "pipeline/database.hpp"
#include "pipeline/migrations.hpp"
#include "pipeline/timestamp.hpp"
#include "queries/partition_map.hpp"

namespace ingest {
namespace {

constexpr auto kDeadlineMargin = std::chrono::seconds(1);
// How long the partition map is used before it is read again. One older
// reads a partition sealed since as not sealed: slower, never wrong.
constexpr auto kPartitionMapAge = std::chrono::seconds(1);
// A page not full after the first sealed partition reads this many next.
constexpr std::size_t kFirstWidening = 8;
constexpr const char* kUtcFormat = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

// One stored event as GET /events and GET /subscribe return it.
constexpr const char* kEventJson =
    "json_build_object('topic', topic, 'event_id', event_id, "
    "'timestamp', to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    "'source', source, 'payload', payload, "
    "'stored_at', to_char(stored_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))::text";
// ts as GET /events prints it (the same format as kEventJson's).

// The columns of a page after (id, ts in micros, stream_seq): the native
// event as one JSON text built by PostgreSQL, or the fields one by one for
// the CloudEvents rendering.
std::string event_columns(bool cloudevents) {
  const std::string ts = std::string("to_char(ts AT TIME ZONE 'UTC', ") + kUtcFormat + ")";
  if (cloudevents) return "topic, event_id, " + ts + ", source, payload::text";
  return kEventJson;
}

// Row `row` of a page (columns of event_columns from index 3) appended to
// the JSON array `out`.
void append_event(std::string& out, const pqxx::row& row, bool cloudevents) {
  if (!cloudevents) {
    out += row[3].c_str();
    return;
  }
  pipeline::Event event;
  event.topic = row[3].c_str();
  event.event_id = row[4].c_str();
  event.timestamp = row[5].c_str();
  event.source = row[6].c_str();
  event.payload_json = row[7].c_str();
  pipeline::cloudevents::append_json(out, event);
}

// The query's bounds of ts, inclusive: since, until and the cursor.
TsWindow window_of(const EventQuery& query) {
  TsWindow window{query.since_micros, std::nullopt};
  if (query.until_micros) window.hi = *query.until_micros - 1;
  if (query.cursor) {
    const std::int64_t at = query.cursor->ts_micros;
    if (query.descending) {
      window.hi = window.hi ? std::min(*window.hi, at) : at;
    } else {
      window.lo = window.lo ? std::max(*window.lo, at) : at;
    }
  }
  return window;
}

// LIKE's wildcards and escape character, escaped.
std::string like_prefix(const std::string& prefix) {
  std::string out;
  for (const char c : prefix) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out + "%";
}

}  // namespace

EventStore::EventStore(const std::string& database_url, std::size_t pool_size,
                       std::chrono::milliseconds query_timeout, std::size_t max_topics)
    : database_url_(pipeline::db::session_url(database_url, {query_timeout, query_timeout})),
      pool_size_(pool_size),
      query_timeout_(query_timeout),
      max_topics_(std::max<std::size_t>(1, max_topics)) {}

EventStore::~EventStore() = default;

std::unique_ptr<pqxx::connection> EventStore::acquire() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!available_.wait_for(lock, query_timeout_,
                           [&] { return !idle_.empty() || open_ < pool_size_; })) {
    throw pqxx::broken_connection("no database connection free within INGEST_QUERY_TIMEOUT");
  }
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
  }
  ++open_;
  lock.unlock();
  try {
    return std::make_unique<pqxx::connection>(database_url_);
  } catch (...) {
    std::lock_guard<std::mutex> relock(mutex_);
    --open_;
    available_.notify_one();
    throw;
  }
}

void EventStore::release(std::unique_ptr<pqxx::connection> conn) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (conn && conn->is_open()) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
  }
  available_.notify_one();
}

template <typename Fn>
auto EventStore::with_connection(Fn&& fn) -> decltype(fn(std::declval<pqxx::connection&>())) {
  // One retry on a fresh connection: a pooled one may have died with a
  // database restart since it was last used. None after a deadline.
  for (int attempt = 0;; ++attempt) {
    auto conn = acquire();
    bool expired = false;
    try {
      auto result = [&] {
        // A server that says nothing (stopped, partitioned) is cut a second
        // after the statement timeout it would have applied itself.
        const pipeline::db::Deadline deadline(*conn, query_timeout_ + kDeadlineMargin);
        try {
          return fn(*conn);
        } catch (...) {
          expired = deadline.expired();
          throw;
        }
      }();
      release(std::move(conn));
      return result;
    } catch (const pqxx::broken_connection&) {
      conn.reset();
      release(nullptr);
      if (attempt >= 1 || expired) throw;
    } catch (...) {
      if (expired) conn.reset();
      release(std::move(conn));
      throw;
    }
  }
}

std::string events_page_sql(const EventQuery& query, std::int64_t snapshot_id,
                            const std::function<std::string(const std::string&)>& quote,
                            const std::string& partitions) {
  // Only the filters in use go into the statement, so each shape of query
  // can use its index.
  std::string sql = "SELECT id, (extract(epoch FROM ts) * 1000000)::bigint, stream_seq, " +
                    event_columns(query.cloudevents) +
                    " FROM events WHERE id <= " + std::to_string(snapshot_id);
  const auto timestamp = [&](std::int64_t micros) {
    return quote(pipeline::format_rfc3339(pipeline::UtcTimestamp{micros})) + "::timestamptz";
  };
  if (!partitions.empty()) sql += " AND " + partitions;
  if (query.topic) sql += " AND topic = " + quote(*query.topic);
  if (query.source) sql += " AND source = " + quote(*query.source);
  if (query.since_micros) sql += " AND ts >= " + timestamp(*query.since_micros);
  if (query.until_micros) sql += " AND ts < " + timestamp(*query.until_micros);
  if (query.cursor) {
    sql += std::string(" AND (ts, stream_seq, id) ") + (query.descending ? "<" : ">") + " (" +
           timestamp(query.cursor->ts_micros) + ", " + std::to_string(query.cursor->stream_seq) +
           ", " + std::to_string(query.cursor->id) + ")";
  }
  const char* direction = query.descending ? "DESC" : "ASC";
  sql += std::string(" ORDER BY ts ") + direction + ", stream_seq " + direction + ", id " +
         direction + " LIMIT " + std::to_string(query.limit + 1);
  return sql;
}

std::shared_ptr<const std::vector<PartitionSpan>> EventStore::partition_map(
    pqxx::connection& conn) {
  const auto now = std::chrono::steady_clock::now();
  {
    const std::lock_guard<std::mutex> lock(map_mutex_);
    if (map_ && now - map_read_at_ < kPartitionMapAge) return map_;
  }
  auto map = std::make_shared<const std::vector<PartitionSpan>>(load_partition_map(conn));
  const std::lock_guard<std::mutex> lock(map_mutex_);
  map_ = map;
  map_read_at_ = now;
  return map;
}

EventPage EventStore::events(const EventQuery& query) {
  return with_connection([&](pqxx::connection& conn) {
    const auto spans = partition_map(conn);
    // Each statement on its own (two round trips fewer than BEGIN ...
    // COMMIT): a page is one statement, whose snapshot is its own, and rows
    // committed between two go to partitions not sealed, which every
    // statement reads.
    pqxx::nontransaction tx(conn);
    const std::int64_t snapshot_id =
        query.cursor ? query.cursor->snapshot_id
                     // The ids handed out so far (no index on id: the sequence says).
                     : tx.exec("SELECT last_value FROM events_id_seq")[0][0].as<std::int64_t>();
    const auto candidates = sealed_candidates(*spans, window_of(query), query.descending);
    // The partitions not sealed and the first sealed one, then as many as
    // the page needs (partition_map.hpp).
    std::size_t reading = std::min<std::size_t>(1, candidates.size());
    pqxx::result rows;
    for (;;) {
      rows = tx.exec(events_page_sql(
          query, snapshot_id, [&](const std::string& text) { return tx.quote(text); },
          stored_at_condition(*spans, candidates, reading)));
      std::size_t needed = candidates.size();
      if (rows.size() > query.limit) {
        needed = candidates_reaching(*spans, candidates,
                                     rows[static_cast<int>(query.limit)][1].as<std::int64_t>(),
                                     query.descending);
      } else if (reading < kFirstWidening) {
        needed = std::min(kFirstWidening, candidates.size());
      }
      if (needed <= reading) break;
      reading = needed;
    }
    EventPage page;
    page.count = std::min<std::size_t>(rows.size(), query.limit);
    page.events_json = "[";
    for (std::size_t i = 0; i < page.count; ++i) {
      if (i != 0) page.events_json += ',';
      append_event(page.events_json, rows[static_cast<int>(i)], query.cloudevents);
    }
    page.events_json += ']';
    if (rows.size() > query.limit) {
      const auto& last = rows[static_cast<int>(query.limit - 1)];
      page.next = EventCursor{last[1].as<std::int64_t>(), last[2].as<std::int64_t>(),
                              last[0].as<std::int64_t>(), snapshot_id};
    }
    return page;
  });
}

EventRun EventStore::events_between(EventPosition after, EventPosition upto, std::size_t limit,
                                    std::size_t max_bytes, const std::string& prefix) {
  return with_connection([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    // The page by count (the index walk), then cut where its JSON passes
    // max_bytes: the rows that begin within the budget. `rows` is the
    // page's own count, so that a cut by bytes is told from the end.
    std::string page = std::string(
                           "SELECT stream_created, stream_seq, topic, "
                           "(extract(epoch FROM stored_at) * 1000000)::bigint AS stored, ") +
                       kEventJson +
                       " AS ev FROM events WHERE (stream_created, stream_seq) > ($1, $2)"
                       " AND (stream_created, stream_seq) <= ($3, $4)";
    if (!prefix.empty()) page += " AND topic LIKE " + tx.quote(like_prefix(prefix));
    page += " ORDER BY stream_created, stream_seq LIMIT " + std::to_string(limit);
    const std::string sql =
        "SELECT stream_created, stream_seq, topic, stored, ev, rows FROM ("
        "SELECT *, sum(octet_length(ev)) OVER w - octet_length(ev) AS before, "
        "count(*) OVER () AS rows FROM (" +
        page +
        ") page WINDOW w AS (ORDER BY stream_created, stream_seq)) sized "
        "WHERE before < $5 ORDER BY stream_created, stream_seq";
    const pqxx::result rows =
        tx.exec_params(sql, after.created, static_cast<std::int64_t>(after.seq), upto.created,
                       static_cast<std::int64_t>(upto.seq),
                       static_cast<std::int64_t>(std::max<std::size_t>(1, max_bytes)));
    EventRun run;
    run.events.reserve(rows.size());
    for (const auto& row : rows) {
      run.events.push_back({{row[0].as<std::int64_t>(), row[1].as<std::uint64_t>()},
                            row[2].as<std::string>(),
                            row[4].as<std::string>(),
                            row[3].as<std::int64_t>()});
    }
    const std::size_t page_rows = rows.empty() ? 0 : rows[0][5].as<std::size_t>();
    run.more = page_rows == limit || run.events.size() < page_rows;
    return run;
  });
}

std::optional<EventPosition> EventStore::before_stored_since(std::int64_t micros) {
  return with_connection([&](pqxx::connection& conn) -> std::optional<EventPosition> {
    pqxx::read_transaction tx(conn);
    const pqxx::result rows = tx.exec_params(
        "SELECT stream_created, stream_seq FROM events WHERE stored_at >= $1::timestamptz "
        "ORDER BY stream_created, stream_seq LIMIT 1",
        pipeline::format_rfc3339(pipeline::UtcTimestamp{micros}));
    if (rows.empty()) return std::nullopt;
    EventPosition first{rows[0][0].as<std::int64_t>(), rows[0][1].as<std::uint64_t>()};
    if (first.seq > 0) --first.seq;
    return first;
  });
}

PipelineCounters EventStore::counters() {
  return with_connection([this](pqxx::connection& conn) {
    // One snapshot for every counter: each batch commits its counters
    // together, so they agree with each other (read committed would let a
    // batch commit between the two statements).
    pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> tx(
        conn);
    PipelineCounters counters;
    for (const auto& row :
         tx.exec("SELECT name, SUM(value)::bigint FROM pipeline_counters GROUP BY name")) {
      const auto name = row[0].as<std::string>();
      const auto value = row[1].as<std::int64_t>();
      if (name == "unique_processed") counters.unique_processed = value;
      if (name == "duplicate_broker") counters.duplicate_broker = value;
      if (name == "duplicate_database") counters.duplicate_database = value;
      if (name == "dead_lettered") counters.dead_lettered = value;
    }
    // The largest topics (ties by name) and how many there are: the answer's
    // size is bounded however many topics there are. count(*) OVER () is
    // taken before the LIMIT.
    const std::string topics_sql =
        "SELECT topic, SUM(value)::bigint AS n, count(*) OVER () FROM ("
        "SELECT topic, value FROM topic_totals UNION ALL "
        "SELECT topic, value FROM topic_counters) t "
        "GROUP BY topic ORDER BY n DESC, topic LIMIT " +
        std::to_string(max_topics_);
    for (const auto& row : tx.exec(topics_sql)) {
      counters.topics.emplace_back(row[0].as<std::string>(), row[1].as<std::int64_t>());
      counters.topics_total = row[2].as<std::int64_t>();
    }
    return counters;
  });
}

bool EventStore::schema_ready() {
  if (schema_ready_) return true;
  const int wanted = pipeline::embedded_migrations().back().version;
  schema_ready_ = with_connection([&](pqxx::connection& conn) {
    pqxx::nontransaction tx(conn);
    // Asked first so that a database without the table logs no error.
    if (!tx.exec("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0].as<bool>()) {
      return false;
    }
    return tx.exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0].as<int>() >=
           wanted;
  });
  return schema_ready_;
}

bool EventStore::reachable() {
  try {
    return with_connection([](pqxx::connection& conn) {
      pqxx::nontransaction tx(conn);
      tx.exec("SELECT 1");
      return true;
    });
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace ingest
