#pragma once

// The statements of BatchWriter, prepared on each connection.
#include <pqxx/connection>

namespace processor::sql {

// Rows are inserted in key order so that two transactions touching the same
// keys take their locks in the same order (no deadlock between processors).
// A key that exists already is left alone here; the first write is settled
// below by stream position.
constexpr const char* kInsertEvents = R"sql(
INSERT INTO events (topic, event_id, ts, source, payload, stream_created, stream_seq)
SELECT topic, event_id, ts, source, payload, stream_created, stream_seq
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::jsonb[], $6::bigint[],
            $7::bigint[])
     AS input(topic, event_id, ts, source, payload, stream_created, stream_seq)
ON CONFLICT (topic, event_id) DO NOTHING
RETURNING stream_created, stream_seq
)sql";

// Run after the INSERT, as its own statement, so that it sees rows a
// concurrent transaction committed while the INSERT waited on them.
constexpr const char* kExistingPositions = R"sql(
SELECT e.topic, e.event_id, e.stream_created, e.stream_seq
FROM events e
JOIN unnest($1::text[], $2::text[]) AS k(topic, event_id)
  ON e.topic = k.topic AND e.event_id = k.event_id
)sql";

// A copy the broker accepted earlier than the stored one (it reached the
// database later: redelivered after a failure, or another worker's batch
// committed first) takes the row's place: first write wins by stream
// position. The row is locked, and re-read under the lock.
constexpr const char* kLockEvent = R"sql(
SELECT stream_created, stream_seq FROM events WHERE topic = $1 AND event_id = $2 FOR UPDATE
)sql";

constexpr const char* kReplaceEvent = R"sql(
UPDATE events SET ts = $3, source = $4, payload = $5, stream_created = $6, stream_seq = $7,
                  stored_at = now()
WHERE topic = $1 AND event_id = $2
)sql";

// A duplicate is counted once per message: a redelivered duplicate finds its
// stream position here already.
constexpr const char* kRecordDuplicates = R"sql(
INSERT INTO duplicate_deliveries (stream_created, stream_seq, topic, event_id)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])
ON CONFLICT (stream_created, stream_seq) DO NOTHING
RETURNING stream_created, stream_seq
)sql";

// A marker is counted once: a redelivered one finds its stream position here.
constexpr const char* kRecordMarkers = R"sql(
INSERT INTO duplicate_markers (stream_created, stream_seq, duplicates)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[])
ON CONFLICT (stream_created, stream_seq) DO NOTHING
RETURNING stream_created, stream_seq, duplicates
)sql";

// What the stream can never deliver again: other incarnations, and below its
// first sequence. (Never by the consumer's ack floor: a worker paused past
// AckWait, a floor that moves back after a failover, or a consumer created
// again with deliver-all can all bring back a message below it.)
constexpr const char* kPruneDuplicates = R"sql(
DELETE FROM duplicate_deliveries
WHERE stream_created <> $1 OR stream_seq < $2
)sql";

constexpr const char* kPruneMarkers = R"sql(
DELETE FROM duplicate_markers
WHERE stream_created <> $1 OR stream_seq < $2
)sql";

constexpr const char* kDeadLetter = R"sql(
INSERT INTO dead_letters (stream_created, stream_seq, subject, reason, raw)
VALUES ($1, $2, $3, $4, decode($5, 'hex'))
ON CONFLICT (stream_created, stream_seq) DO NOTHING
RETURNING stream_seq
)sql";

constexpr const char* kAddCounters = R"sql(
INSERT INTO pipeline_counters (name, shard, value)
SELECT name, $1, value FROM unnest($2::text[], $3::bigint[]) AS c(name, value)
ON CONFLICT (name, shard) DO UPDATE SET value = pipeline_counters.value + EXCLUDED.value
)sql";

constexpr const char* kAddTopicCounters = R"sql(
INSERT INTO topic_counters (topic, shard, value)
SELECT topic, $1, value FROM unnest($2::text[], $3::bigint[]) AS c(topic, value)
ON CONFLICT (topic, shard) DO UPDATE SET value = topic_counters.value + EXCLUDED.value
)sql";

inline void prepare(pqxx::connection& conn) {
  conn.prepare("insert_events", kInsertEvents);
  conn.prepare("existing_positions", kExistingPositions);
  conn.prepare("lock_event", kLockEvent);
  conn.prepare("replace_event", kReplaceEvent);
  conn.prepare("record_duplicates", kRecordDuplicates);
  conn.prepare("record_markers", kRecordMarkers);
  conn.prepare("prune_duplicates", kPruneDuplicates);
  conn.prepare("prune_markers", kPruneMarkers);
  conn.prepare("dead_letter", kDeadLetter);
  conn.prepare("add_counters", kAddCounters);
  conn.prepare("add_topic_counters", kAddTopicCounters);
}

}  // namespace processor::sql
