#include "processor/batch_writer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <pqxx/pqxx>
#include <random>
#include <set>

#include "pipeline/database.hpp"
#include "pipeline/event.hpp"
#include "pipeline/fault.hpp"

namespace processor {
namespace {

constexpr int kCounterShards = 64;

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

// More duplicates than one request can carry means a marker ingest did not write.
constexpr std::uint64_t kMaxMarkerCount = 1'000'000;

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

std::string to_hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += kDigits[b >> 4];
    out += kDigits[b & 0xF];
  }
  return out;
}

StreamPosition position_of(const pqxx::row& row, int created_column) {
  return {row[created_column].as<std::int64_t>(), row[created_column + 1].as<std::uint64_t>()};
}

// The count a broker-duplicate marker carries, or 0 (and `why`) when its
// body is not a decimal count.
std::uint64_t marker_count(const std::string& body, std::string* why) {
  std::uint64_t count = 0;
  bool ok = !body.empty() && body.size() <= 7;  // 7 digits: no overflow, kMaxMarkerCount fits
  for (const char c : body) {
    if (c < '0' || c > '9') ok = false;
    if (ok) count = count * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (!ok || count == 0 || count > kMaxMarkerCount) {
    *why = "broker-duplicate marker: body is not a count of duplicates";
    return 0;
  }
  return count;
}

struct DecodedRow {
  std::size_t message_index;
  pipeline::Event event;
};

// A batch taken apart: the events (sorted by key, then stream position), the
// markers, the messages no retry can store, and what is already decided.
struct SortedBatch {
  std::vector<DecodedRow> rows;
  std::vector<std::pair<std::size_t, std::uint64_t>> markers;  // message index, count
  std::vector<std::pair<std::size_t, std::string>> dead;       // message index, reason
};

SortedBatch sort_batch(const std::vector<IncomingMessage>& messages,
                       std::vector<StoreOutcome>& outcomes) {
  SortedBatch batch;
  batch.rows.reserve(messages.size());
  // The same message can come twice in one batch: redelivered (after
  // AckWait) to a pull request of the very worker that still holds it. Only
  // its first copy is written; the others count as redeliveries.
  std::set<StreamPosition> seen;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const IncomingMessage& m = messages[i];
    if (!seen.insert(m.position).second) {
      outcomes[i] = StoreOutcome::kRedelivered;
      continue;
    }
    std::string why;
    if (m.broker_duplicate_marker) {
      if (const std::uint64_t count = marker_count(m.data, &why)) {
        batch.markers.emplace_back(i, count);
      } else {
        batch.dead.emplace_back(i, why);
      }
      continue;
    }
    if (auto event = pipeline::decode_event(m.data, &why)) {
      batch.rows.push_back({i, std::move(*event)});
    } else {
      batch.dead.emplace_back(i, why);
    }
  }
  // By key (lock order), then by stream position, so that the first copy of
  // a key in the batch is the one the broker accepted first.
  std::sort(batch.rows.begin(), batch.rows.end(), [&](const DecodedRow& a, const DecodedRow& b) {
    const int topic = a.event.topic.compare(b.event.topic);
    if (topic != 0) return topic < 0;
    const int id = a.event.event_id.compare(b.event.event_id);
    if (id != 0) return id < 0;
    return messages[a.message_index].position < messages[b.message_index].position;
  });
  return batch;
}

bool same_key(const DecodedRow& a, const DecodedRow& b) {
  return a.event.topic == b.event.topic && a.event.event_id == b.event.event_id;
}

// Counts each marker once: a redelivered marker finds its stream position in
// duplicate_markers already and becomes kRedelivered. Returns the duplicates
// the fresh markers carry.
std::size_t record_markers(pqxx::work& tx, const std::vector<IncomingMessage>& messages,
                           const std::vector<std::pair<std::size_t, std::uint64_t>>& markers,
                           std::vector<StoreOutcome>& outcomes) {
  if (markers.empty()) return 0;
  std::vector<std::string> created;
  std::vector<std::string> seqs;
  std::vector<std::string> counts;
  for (const auto& [index, count] : markers) {
    created.push_back(std::to_string(messages[index].position.created));
    seqs.push_back(std::to_string(messages[index].position.seq));
    counts.push_back(std::to_string(count));
  }
  const pqxx::result fresh = tx.exec_prepared("record_markers", to_pg_array(created),
                                              to_pg_array(seqs), to_pg_array(counts));
  std::set<StreamPosition> fresh_positions;
  std::size_t duplicates = 0;
  for (const auto& r : fresh) {
    fresh_positions.insert(position_of(r, 0));
    duplicates += r[2].as<std::size_t>();
  }
  for (const auto& marker : markers) {
    outcomes[marker.first] = fresh_positions.count(messages[marker.first].position) != 0
                                 ? StoreOutcome::kBrokerDuplicate
                                 : StoreOutcome::kRedelivered;
  }
  return duplicates;
}

// A message whose key is stored by another message: remembered by stream
// position, so that its redelivery is not counted again.
struct DuplicateRecord {
  StreamPosition position;
  std::string topic;
  std::string event_id;
  std::size_t message_index;  ///< the message it is, or SIZE_MAX for a displaced stored copy
};

// Records the duplicates; returns how many are fresh (counted now). A
// message of the batch recorded before becomes kRedelivered.
std::size_t record_duplicates(pqxx::work& tx, const std::vector<DuplicateRecord>& records,
                              std::vector<StoreOutcome>& outcomes) {
  if (records.empty()) return 0;
  std::vector<std::string> created;
  std::vector<std::string> seqs;
  std::vector<std::string> topics;
  std::vector<std::string> event_ids;
  for (const auto& r : records) {
    created.push_back(std::to_string(r.position.created));
    seqs.push_back(std::to_string(r.position.seq));
    topics.push_back(r.topic);
    event_ids.push_back(r.event_id);
  }
  const pqxx::result fresh =
      tx.exec_prepared("record_duplicates", to_pg_array(created), to_pg_array(seqs),
                       to_pg_array(topics), to_pg_array(event_ids));
  std::set<StreamPosition> fresh_positions;
  for (const auto& r : fresh) fresh_positions.insert(position_of(r, 0));
  for (const auto& r : records) {
    if (r.message_index != SIZE_MAX && fresh_positions.count(r.position) == 0) {
      outcomes[r.message_index] = StoreOutcome::kRedelivered;
    }
  }
  return fresh.size();
}

}  // namespace

std::string to_pg_array(const std::vector<std::string>& values) {
  std::size_t size = 2;
  for (const auto& v : values) size += v.size() + 3;
  std::string out;
  out.reserve(size);
  out += '{';
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i != 0) out += ',';
    out += '"';
    for (const char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

BatchWriter::BatchWriter(std::string database_url)
    : database_url_(std::move(database_url)), shard_seed_(std::random_device{}()) {}

BatchWriter::~BatchWriter() = default;

void BatchWriter::reset() { conn_.reset(); }

bool BatchWriter::connected() const { return conn_ && conn_->is_open(); }

void BatchWriter::connect() {
  if (connected()) return;
  conn_.reset();
  conn_ = std::make_unique<pqxx::connection>(database_url_);
  conn_->prepare("insert_events", kInsertEvents);
  conn_->prepare("existing_positions", kExistingPositions);
  conn_->prepare("lock_event", kLockEvent);
  conn_->prepare("replace_event", kReplaceEvent);
  conn_->prepare("record_duplicates", kRecordDuplicates);
  conn_->prepare("record_markers", kRecordMarkers);
  conn_->prepare("prune_duplicates", kPruneDuplicates);
  conn_->prepare("prune_markers", kPruneMarkers);
  conn_->prepare("dead_letter", kDeadLetter);
  conn_->prepare("add_counters", kAddCounters);
  conn_->prepare("add_topic_counters", kAddTopicCounters);
}

BatchResult BatchWriter::write(const std::vector<IncomingMessage>& messages) {
  BatchResult result;
  result.outcomes.assign(messages.size(), StoreOutcome::kStored);
  if (messages.empty()) return result;
  SortedBatch batch = sort_batch(messages, result.outcomes);

  // The first copy of each key goes to the INSERT; later copies in the same
  // batch are duplicates of whatever that key ends up holding.
  std::vector<const DecodedRow*> firsts;
  std::vector<DuplicateRecord> duplicates;
  for (std::size_t i = 0; i < batch.rows.size(); ++i) {
    const DecodedRow& row = batch.rows[i];
    if (i > 0 && same_key(batch.rows[i - 1], row)) {
      result.outcomes[row.message_index] = StoreOutcome::kDuplicate;
      duplicates.push_back({messages[row.message_index].position, row.event.topic,
                            row.event.event_id, row.message_index});
    } else {
      firsts.push_back(&row);
    }
  }

  connect();
  pqxx::work tx(*conn_);
  std::size_t displaced = 0;  // stored copies a first write took the place of
  if (!firsts.empty()) {
    std::vector<std::string> topics;
    std::vector<std::string> event_ids;
    std::vector<std::string> timestamps;
    std::vector<std::string> sources;
    std::vector<std::string> payloads;
    std::vector<std::string> created;
    std::vector<std::string> seqs;
    for (const DecodedRow* row : firsts) {
      const StreamPosition& at = messages[row->message_index].position;
      topics.push_back(row->event.topic);
      event_ids.push_back(row->event.event_id);
      timestamps.push_back(row->event.timestamp);
      sources.push_back(row->event.source);
      payloads.push_back(row->event.payload_json);
      created.push_back(std::to_string(at.created));
      seqs.push_back(std::to_string(at.seq));
    }
    const std::string topic_array = to_pg_array(topics);
    const std::string event_id_array = to_pg_array(event_ids);
    const pqxx::result inserted = tx.exec_prepared(
        "insert_events", topic_array, event_id_array, to_pg_array(timestamps), to_pg_array(sources),
        to_pg_array(payloads), to_pg_array(created), to_pg_array(seqs));
    std::set<StreamPosition> inserted_positions;
    for (const auto& r : inserted) inserted_positions.insert(position_of(r, 0));

    std::map<std::pair<std::string, std::string>, StreamPosition> stored_at;
    if (inserted.size() < firsts.size()) {
      for (const auto& r : tx.exec_prepared("existing_positions", topic_array, event_id_array)) {
        stored_at[{r[0].as<std::string>(), r[1].as<std::string>()}] = position_of(r, 2);
      }
    }
    for (const DecodedRow* row : firsts) {
      const StreamPosition& at = messages[row->message_index].position;
      if (inserted_positions.count(at) != 0) continue;  // kStored
      const auto it = stored_at.find({row->event.topic, row->event.event_id});
      StreamPosition existing = it != stored_at.end() ? it->second : StreamPosition{};
      if (at < existing) {
        // Possibly a first write that arrives late: decide under the row lock.
        const pqxx::result locked =
            tx.exec_prepared("lock_event", row->event.topic, row->event.event_id);
        if (!locked.empty()) existing = position_of(locked[0], 0);
        if (at < existing) {
          tx.exec_prepared("replace_event", row->event.topic, row->event.event_id,
                           row->event.timestamp, row->event.source, row->event.payload_json,
                           at.created, static_cast<std::int64_t>(at.seq));
          result.outcomes[row->message_index] = StoreOutcome::kReplaced;
          duplicates.push_back({existing, row->event.topic, row->event.event_id, SIZE_MAX});
          continue;
        }
      }
      if (existing == at) {
        result.outcomes[row->message_index] = StoreOutcome::kRedelivered;
      } else {
        result.outcomes[row->message_index] = StoreOutcome::kDuplicate;
        duplicates.push_back({at, row->event.topic, row->event.event_id, row->message_index});
      }
    }
  }
  // The displaced copies were counted as stored when they got there: they
  // now count as duplicates instead (and their own redelivery is recognised).
  const std::size_t fresh_duplicates = record_duplicates(tx, duplicates, result.outcomes);
  for (const auto& record : duplicates) {
    if (record.message_index == SIZE_MAX) ++displaced;
  }
  result.broker_duplicates = record_markers(tx, messages, batch.markers, result.outcomes);
  for (const auto& [index, reason] : batch.dead) {
    const IncomingMessage& m = messages[index];
    const pqxx::result fresh = tx.exec_prepared("dead_letter", m.position.created,
                                                static_cast<std::int64_t>(m.position.seq),
                                                m.subject, reason, to_hex(m.data));
    // A redelivered dead letter is already kept (and counted).
    result.dead_lettered += fresh.size();
    result.outcomes[index] = StoreOutcome::kDeadLettered;
  }

  // Counters, in the same transaction as the rows they count.
  std::map<std::string, std::int64_t> per_topic;
  for (const auto& row : batch.rows) {
    if (result.outcomes[row.message_index] == StoreOutcome::kStored) ++per_topic[row.event.topic];
  }
  for (const StoreOutcome outcome : result.outcomes) {
    if (outcome == StoreOutcome::kStored) ++result.stored;
    if (outcome == StoreOutcome::kRedelivered) ++result.redelivered;
    if (outcome == StoreOutcome::kBrokerDuplicate) ++result.markers;
  }
  // Fresh duplicate records: messages of this batch counted now, and the
  // displaced copies (always fresh: a stored copy was never a duplicate).
  result.duplicates = fresh_duplicates;
  (void)displaced;

  std::vector<std::string> names;
  std::vector<std::string> values;
  const auto add = [&](const char* name, std::size_t value) {
    if (value == 0) return;
    names.emplace_back(name);
    values.push_back(std::to_string(value));
  };
  add("dead_lettered", result.dead_lettered);
  add("duplicate_database", result.duplicates);
  add("duplicate_broker", result.broker_duplicates);
  add("unique_processed", result.stored);
  const int shard = static_cast<int>(shard_seed_++ % kCounterShards);
  if (!names.empty()) {
    tx.exec_prepared("add_counters", shard, to_pg_array(names), to_pg_array(values));
  }
  if (!per_topic.empty()) {
    std::vector<std::string> topic_names;
    std::vector<std::string> topic_values;
    for (const auto& [topic, count] : per_topic) {
      topic_names.push_back(topic);
      topic_values.push_back(std::to_string(count));
    }
    tx.exec_prepared("add_topic_counters", shard, to_pg_array(topic_names),
                     to_pg_array(topic_values));
  }
  pipeline::fault::crash_point("processor.after_insert_before_commit");
  tx.commit();
  return result;
}

void BatchWriter::dead_letter(const IncomingMessage& message, const std::string& reason) {
  connect();
  pqxx::work tx(*conn_);
  const pqxx::result fresh = tx.exec_prepared("dead_letter", message.position.created,
                                              static_cast<std::int64_t>(message.position.seq),
                                              message.subject, reason, to_hex(message.data));
  if (fresh.empty()) {
    tx.commit();
    return;
  }
  std::vector<std::string> names{"dead_lettered"};
  std::vector<std::string> values{"1"};
  tx.exec_prepared("add_counters", static_cast<int>(shard_seed_++ % kCounterShards),
                   to_pg_array(names), to_pg_array(values));
  tx.commit();
}

std::size_t BatchWriter::prune(std::int64_t current, std::uint64_t first_seq) {
  connect();
  pqxx::work tx(*conn_);
  const auto first = static_cast<std::int64_t>(first_seq);
  const pqxx::result deliveries = tx.exec_prepared("prune_duplicates", current, first);
  const pqxx::result markers = tx.exec_prepared("prune_markers", current, first);
  tx.commit();
  return deliveries.affected_rows() + markers.affected_rows();
}

}  // namespace processor
