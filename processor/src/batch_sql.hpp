#pragma once

// The statements of BatchWriter, prepared on each connection.
#include <pqxx/connection>

namespace processor::sql {

// Rows are inserted in key order so that two transactions touching the same
// keys take their locks in the same order (no deadlock between processors).
// Only keys no partition holds get here (kExistingIn* first); one
// inserted meanwhile by another transaction into the same partition is
// left alone (its partition's UNIQUE (key_hash)), and settled below by
// stream position.
constexpr const char* kInsertEvents = R"sql(
INSERT INTO events (topic, event_id, ts, source, payload, stream_created, stream_seq)
SELECT topic, event_id, ts, source, payload, stream_created, stream_seq
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::jsonb[], $6::bigint[],
            $7::bigint[])
     AS input(topic, event_id, ts, source, payload, stream_created, stream_seq)
ON CONFLICT DO NOTHING
RETURNING stream_created, stream_seq
)sql";

// The keys stored already, in whatever partition: the batch's keys ($1,
// event_key computed by the processor) in the partitions from $2 on
// (-infinity without key filters; else those not sealed, or beyond the
// filters held: key_filters.hpp) ... Not prepared: planned for each batch
// with its $2, so the plan holds just those partitions. Prepared, PostgreSQL
// settled on a generic plan once the table had 53 partitions (make
// bench-growth at 50 M rows), which ANDs each partition's BRIN on stored_at
// into the key lookup: 0.3 + 11.9 ms (planning + execution) per batch
// against 0.9 + 2.4 planned each time (by hand on that run's data).
constexpr const char* kExistingInUnfiltered = R"sql(
SELECT e.topic, e.event_id, e.stream_created, e.stream_seq
FROM events e
WHERE e.key_hash = ANY ($1::uuid[]) AND e.stored_at >= $2::timestamptz
)sql";

// ... and each key a sealed partition's filter may hold ($1) in that
// partition only ($2 <= stored_at < $3: the plan keeps just that partition,
// at run time). A statement of its own, run only when a filter answers
// maybe: its custom plan would cover every partition (its bounds come from
// the rows of $1, not from the parameters), so PostgreSQL soon settles on
// one generic plan rather than plan it for each batch (by hand on 22
// partitions of 20 M rows: 2.0 to 2.3 ms per batch planned each time, the
// planning growing with the partitions; 0.75 ms in all with the generic plan).
constexpr const char* kExistingInFiltered = R"sql(
SELECT e.topic, e.event_id, e.stream_created, e.stream_seq
FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS h(key, lo, hi)
CROSS JOIN LATERAL (SELECT * FROM events e
                    WHERE e.key_hash = h.key AND e.stored_at >= h.lo AND e.stored_at < h.hi) e
)sql";

// Transaction-scoped advisory locks on the batch's keys when the
// transaction's now() (the stored_at of its rows, so the partition they go
// to) lies near a partition's end (partition_bounds.hpp): a transaction on
// the other side of the end may be storing the same key in the other
// partition. In one order for every processor (a deadlock would be
// detected and retried all the same).
constexpr const char* kLockKeys = R"sql(
SELECT count(*) FROM (
  SELECT pg_advisory_xact_lock(k) FROM (
    SELECT DISTINCT hashtextextended(topic || ':' || event_id, 0) AS k
    FROM unnest($1::text[], $2::text[]) AS u(topic, event_id)
    ORDER BY k OFFSET 0) keys) locked
)sql";

// A copy the broker accepted earlier than the stored one (it reached the
// database later: redelivered after a failure, or another worker's batch
// committed first) takes the row's place: first write wins by stream
// position. The row is locked, and re-read under the lock.
constexpr const char* kLockEvent = R"sql(
SELECT stream_created, stream_seq FROM events WHERE key_hash = event_key($1, $2) FOR UPDATE
)sql";

constexpr const char* kReplaceEvent = R"sql(
UPDATE events SET ts = $3, source = $4, payload = $5, stream_created = $6, stream_seq = $7,
                  stored_at = now()
WHERE key_hash = event_key($1, $2)
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

// topic_counters folded into topic_totals, atomically: rows a batch adds
// meanwhile stay for the next time. It never waits for a batch's row (SKIP
// LOCKED: that row waits for the next time too), so no batch and no
// compaction deadlock over topic_counters (a plain DELETE did, seen in make
// bench); topic_totals is written in topic order, as every compaction does.
constexpr const char* kCompactTopicCounters = R"sql(
WITH moved AS (
  DELETE FROM topic_counters
  WHERE ctid = ANY(ARRAY(SELECT ctid FROM topic_counters FOR UPDATE SKIP LOCKED))
  RETURNING topic, value)
INSERT INTO topic_totals (topic, value)
SELECT topic, SUM(value) FROM moved GROUP BY topic ORDER BY topic
ON CONFLICT (topic) DO UPDATE SET value = topic_totals.value + EXCLUDED.value
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
  conn.prepare("existing_in_filtered", kExistingInFiltered);
  conn.prepare("lock_keys", kLockKeys);
  conn.prepare("lock_event", kLockEvent);
  conn.prepare("replace_event", kReplaceEvent);
  conn.prepare("record_duplicates", kRecordDuplicates);
  conn.prepare("record_markers", kRecordMarkers);
  conn.prepare("prune_duplicates", kPruneDuplicates);
  conn.prepare("prune_markers", kPruneMarkers);
  conn.prepare("compact_topic_counters", kCompactTopicCounters);
  conn.prepare("dead_letter", kDeadLetter);
  conn.prepare("add_counters", kAddCounters);
  conn.prepare("add_topic_counters", kAddTopicCounters);
}

}  // namespace processor::sql
