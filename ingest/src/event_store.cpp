#include "ingest/event_store.hpp"

#include <pqxx/pqxx>
#include <random>

namespace ingest {
namespace {

constexpr auto kAcquireTimeout = std::chrono::seconds(5);
constexpr int kCounterShards = 64;

}  // namespace

EventStore::EventStore(std::string database_url, std::size_t pool_size)
    : database_url_(std::move(database_url)), pool_size_(pool_size) {}

EventStore::~EventStore() = default;

std::unique_ptr<pqxx::connection> EventStore::acquire() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!available_.wait_for(lock, kAcquireTimeout,
                           [&] { return !idle_.empty() || open_ < pool_size_; })) {
    throw pqxx::broken_connection("no database connection free within 5 s");
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
  // database restart since it was last used.
  for (int attempt = 0;; ++attempt) {
    auto conn = acquire();
    try {
      auto result = fn(*conn);
      release(std::move(conn));
      return result;
    } catch (const pqxx::broken_connection&) {
      conn.reset();
      release(nullptr);
      if (attempt >= 1) throw;
    } catch (...) {
      release(std::move(conn));
      throw;
    }
  }
}

std::string EventStore::events_json(const EventQuery& query) {
  return with_connection([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    const pqxx::result r = tx.exec_params(
        R"sql(
SELECT COALESCE(json_agg(json_build_object(
         'topic', topic, 'event_id', event_id,
         'timestamp', to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
         'source', source, 'payload', payload,
         'stored_at', to_char(stored_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
       ORDER BY ts, id), '[]')::text
FROM (SELECT * FROM events
      WHERE ($1::text IS NULL OR topic = $1)
      ORDER BY ts, id
      LIMIT $2) AS page
)sql",
        query.topic ? query.topic->c_str() : static_cast<const char*>(nullptr),
        static_cast<std::int64_t>(query.limit));
    return r[0][0].as<std::string>();
  });
}

PipelineCounters EventStore::counters() {
  return with_connection([](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
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
    for (const auto& row : tx.exec("SELECT topic, SUM(value)::bigint FROM topic_counters GROUP BY "
                                   "topic ORDER BY topic")) {
      counters.topics.emplace_back(row[0].as<std::string>(), row[1].as<std::int64_t>());
    }
    return counters;
  });
}

void EventStore::add_broker_duplicates(std::int64_t count) {
  if (count <= 0) return;
  thread_local std::minstd_rand shard_random(std::random_device{}());
  const int shard = static_cast<int>(shard_random() % kCounterShards);
  with_connection([&](pqxx::connection& conn) {
    pqxx::work tx(conn);
    tx.exec_params(
        "INSERT INTO pipeline_counters (name, shard, value) VALUES ('duplicate_broker', $1, $2) "
        "ON CONFLICT (name, shard) DO UPDATE SET value = pipeline_counters.value + EXCLUDED.value",
        shard, count);
    tx.commit();
    return 0;
  });
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
