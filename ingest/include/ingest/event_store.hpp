#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/connection>

#include "ingest/event_position.hpp"

namespace ingest {

/// One stored event as subscriptions send it.
struct StoredEvent {
  EventPosition position;
  std::string topic;
  std::string json;  ///< the object GET /events returns for it
  std::int64_t stored_at_micros = 0;
};

/// Stored events in position order, read for subscriptions.
struct EventRun {
  std::vector<StoredEvent> events;
  /// More events may follow the last one within the range asked for (the
  /// run was cut by its count or its bytes); false: the range is done.
  bool more = false;
};

/// Where a page of GET /events ends: the last event's (timestamp, stream
/// sequence, id) and the
/// highest id that existed when the first page was read, so that a walk over
/// the pages sees one fixed set of events, with no gaps and no repeats, while
/// new events arrive.
struct EventCursor {
  std::int64_t ts_micros = 0;
  std::int64_t stream_seq = 0;
  std::int64_t id = 0;
  std::int64_t snapshot_id = 0;

  /// An opaque URL-safe token.
  std::string encode(bool descending) const;
  /// Parses a token from encode(); nullopt when it is not one, or was made
  /// for the other order.
  static std::optional<EventCursor> decode(const std::string& token, bool descending);
};

/// A GET /events query.
struct EventQuery {
  std::optional<std::string> topic;
  std::optional<std::string> source;
  std::optional<std::int64_t> since_micros;  ///< inclusive
  std::optional<std::int64_t> until_micros;  ///< exclusive
  bool descending = false;
  std::size_t limit = 100;
  std::optional<EventCursor> cursor;
  /// Each event as a structured CloudEvent (pipeline::cloudevents::append_json)
  /// instead of the native shape.
  bool cloudevents = false;
};

/// One page of events.
struct EventPage {
  std::string events_json;  ///< a JSON array
  std::size_t count = 0;
  std::optional<EventCursor> next;  ///< set when more events follow
};

/// The durable counters behind GET /stats.
struct PipelineCounters {
  std::int64_t unique_processed = 0;
  std::int64_t duplicate_broker = 0;    ///< dropped by the JetStream duplicate window (markers)
  std::int64_t duplicate_database = 0;  ///< dropped by UNIQUE(topic, event_id)
  std::int64_t dead_lettered = 0;
  /// Unique events per topic: the largest topics (ties by name), at most
  /// the store's max_topics.
  std::vector<std::pair<std::string, std::int64_t>> topics;
  std::int64_t topics_total = 0;  ///< how many topics there are
};

/// The statement of one page of `query` (limit + 1 rows, to know whether more
/// follow) among the events with id <= snapshot_id, in the partitions that
/// `partitions` (a condition on stored_at, "" for all) selects; `quote`
/// makes a string an SQL literal. Public so that a test can EXPLAIN the very
/// statement.
std::string events_page_sql(const EventQuery& query, std::int64_t snapshot_id,
                            const std::function<std::string(const std::string&)>& quote,
                            const std::string& partitions = "");

struct PartitionSpan;

/// Reads events and counters from PostgreSQL (ingest writes nothing there).
/// A small pool of connections, safe to use from any thread.
class EventStore {
 public:
  /// Every query (with the wait for a free connection) ends within about
  /// `query_timeout`: the server cancels a statement after it, and the
  /// client cuts a connection whose server says nothing for a second more.
  EventStore(const std::string& database_url, std::size_t pool_size,
             std::chrono::milliseconds query_timeout = std::chrono::seconds(5),
             std::size_t max_topics = 100);
  ~EventStore();
  EventStore(const EventStore&) = delete;
  EventStore& operator=(const EventStore&) = delete;

  /// The matching events in (timestamp, arrival) order, or the reverse.
  /// Throws pqxx errors.
  EventPage events(const EventQuery& query);

  /// Every counter from one snapshot of the database. Throws pqxx errors.
  PipelineCounters counters();

  /// Stored events with `after` < position <= `upto` in position order, at
  /// most `limit` and about `max_bytes` of JSON (one at least), only topics
  /// starting with `prefix` when it is not empty (GET /subscribe). Throws
  /// pqxx errors.
  EventRun events_between(EventPosition after, EventPosition upto, std::size_t limit,
                          std::size_t max_bytes, const std::string& prefix);
  /// The position just before the first event stored at or after `micros`.
  std::optional<EventPosition> before_stored_since(std::int64_t micros);

  /// True when a trivial query succeeds.
  bool reachable();

  /// True once schema_migrations holds the newest migration this build
  /// knows (the processor applies them; ingest never writes the schema).
  /// Remembered once true. Throws pqxx errors.
  bool schema_ready();

 private:
  template <typename Fn>
  auto with_connection(Fn&& fn) -> decltype(fn(std::declval<pqxx::connection&>()));

  std::unique_ptr<pqxx::connection> acquire();
  void release(std::unique_ptr<pqxx::connection> conn);

  std::string database_url_;
  std::size_t pool_size_;
  std::chrono::milliseconds query_timeout_;
  std::size_t max_topics_;  ///< STATS_MAX_TOPICS
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
  std::size_t open_ = 0;
  std::atomic<bool> schema_ready_{false};
  /// The partitions of events and the ranges of ts of the sealed ones
  /// (queries/partition_map.hpp), read again once a second.
  std::shared_ptr<const std::vector<PartitionSpan>> partition_map(pqxx::connection& conn);
  std::mutex map_mutex_;
  std::shared_ptr<const std::vector<PartitionSpan>> map_;
  std::chrono::steady_clock::time_point map_read_at_;
};

}  // namespace ingest
