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
constexpr const char* kInsertEvents = R"sql(
INSERT INTO events (topic, event_id, ts, source, payload, stream_seq)
SELECT topic, event_id, ts, source, payload, stream_seq
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::jsonb[], $6::bigint[])
     AS input(topic, event_id, ts, source, payload, stream_seq)
ON CONFLICT (topic, event_id) DO NOTHING
RETURNING stream_seq
)sql";

// Run after the INSERT, as its own statement, so that it sees rows a
// concurrent transaction committed while the INSERT waited on them.
constexpr const char* kExistingSeqs = R"sql(
SELECT e.stream_seq, e.topic, e.event_id
FROM events e
JOIN unnest($1::text[], $2::text[]) AS k(topic, event_id)
  ON e.topic = k.topic AND e.event_id = k.event_id
)sql";

// A duplicate is counted once per message: a redelivered duplicate finds its
// stream sequence here already.
constexpr const char* kRecordDuplicates = R"sql(
INSERT INTO duplicate_deliveries (stream_seq, topic, event_id)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])
ON CONFLICT (stream_seq) DO NOTHING
RETURNING stream_seq
)sql";

constexpr const char* kPruneDuplicates = R"sql(
DELETE FROM duplicate_deliveries WHERE stream_seq <= $1
)sql";

// A marker is counted once: a redelivered one finds its stream sequence here.
constexpr const char* kRecordMarkers = R"sql(
INSERT INTO duplicate_markers (stream_seq, duplicates)
SELECT * FROM unnest($1::bigint[], $2::int[])
ON CONFLICT (stream_seq) DO NOTHING
RETURNING stream_seq, duplicates
)sql";

constexpr const char* kPruneMarkers = R"sql(
DELETE FROM duplicate_markers WHERE stream_seq <= $1
)sql";

// More duplicates than one request can carry means a marker ingest did not write.
constexpr std::uint64_t kMaxMarkerCount = 1'000'000;

constexpr const char* kDeadLetter = R"sql(
INSERT INTO dead_letters (stream_seq, subject, reason, raw)
VALUES ($1, $2, $3, decode($4, 'hex'))
ON CONFLICT (stream_seq) DO NOTHING
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

struct DecodedRow {
  std::size_t message_index;
  pipeline::Event event;
};

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

// Counts each marker once: a redelivered marker finds its stream sequence in
// duplicate_markers already and becomes kRedelivered. Returns the duplicates
// the fresh markers carry.
std::size_t record_markers(pqxx::work& tx, const std::vector<IncomingMessage>& messages,
                           const std::vector<std::pair<std::size_t, std::uint64_t>>& markers,
                           std::vector<StoreOutcome>& outcomes) {
  if (markers.empty()) return 0;
  std::vector<std::string> seqs;
  std::vector<std::string> counts;
  for (const auto& [index, count] : markers) {
    seqs.push_back(std::to_string(messages[index].stream_seq));
    counts.push_back(std::to_string(count));
  }
  const pqxx::result fresh =
      tx.exec_prepared("record_markers", to_pg_array(seqs), to_pg_array(counts));
  std::set<std::uint64_t> fresh_seqs;
  std::size_t duplicates = 0;
  for (const auto& r : fresh) {
    fresh_seqs.insert(r[0].as<std::uint64_t>());
    duplicates += r[1].as<std::size_t>();
  }
  for (const auto& [index, count] : markers) {
    outcomes[index] = fresh_seqs.count(messages[index].stream_seq) != 0
                          ? StoreOutcome::kBrokerDuplicate
                          : StoreOutcome::kRedelivered;
  }
  return duplicates;
}

// Turns kDuplicate into kRedelivered for messages already counted as
// duplicates by an earlier delivery.
void record_duplicates(pqxx::work& tx, const std::vector<IncomingMessage>& messages,
                       const std::vector<DecodedRow>& rows, std::vector<StoreOutcome>& outcomes) {
  std::vector<std::string> seqs;
  std::vector<std::string> topics;
  std::vector<std::string> event_ids;
  for (const auto& row : rows) {
    if (outcomes[row.message_index] != StoreOutcome::kDuplicate) continue;
    seqs.push_back(std::to_string(messages[row.message_index].stream_seq));
    topics.push_back(row.event.topic);
    event_ids.push_back(row.event.event_id);
  }
  if (seqs.empty()) return;
  const pqxx::result fresh = tx.exec_prepared("record_duplicates", to_pg_array(seqs),
                                              to_pg_array(topics), to_pg_array(event_ids));
  std::set<std::uint64_t> fresh_seqs;
  for (const auto& r : fresh) fresh_seqs.insert(r[0].as<std::uint64_t>());
  for (const auto& row : rows) {
    if (outcomes[row.message_index] == StoreOutcome::kDuplicate &&
        fresh_seqs.count(messages[row.message_index].stream_seq) == 0) {
      outcomes[row.message_index] = StoreOutcome::kRedelivered;
    }
  }
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
  conn_->prepare("existing_seqs", kExistingSeqs);
  conn_->prepare("record_duplicates", kRecordDuplicates);
  conn_->prepare("prune_duplicates", kPruneDuplicates);
  conn_->prepare("record_markers", kRecordMarkers);
  conn_->prepare("prune_markers", kPruneMarkers);
  conn_->prepare("dead_letter", kDeadLetter);
  conn_->prepare("add_counters", kAddCounters);
  conn_->prepare("add_topic_counters", kAddTopicCounters);
}

BatchResult BatchWriter::write(const std::vector<IncomingMessage>& messages) {
  BatchResult result;
  result.outcomes.assign(messages.size(), StoreOutcome::kStored);
  if (messages.empty()) return result;

  std::vector<DecodedRow> rows;
  std::vector<std::pair<std::size_t, std::string>> dead;       // message index, reason
  std::vector<std::pair<std::size_t, std::uint64_t>> markers;  // message index, count
  rows.reserve(messages.size());
  // The same message can come twice in one batch: redelivered (after AckWait)
  // to a pull request of the very worker that still holds it. Only its first
  // copy is written; the others count as redeliveries, not as new events.
  std::set<std::uint64_t> seen;
  std::size_t repeats = 0;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].stream_seq != 0 && !seen.insert(messages[i].stream_seq).second) {
      result.outcomes[i] = StoreOutcome::kRedelivered;
      ++repeats;
      continue;
    }
    std::string why;
    if (messages[i].broker_duplicate_marker) {
      if (const std::uint64_t count = marker_count(messages[i].data, &why)) {
        markers.emplace_back(i, count);
      } else {
        dead.emplace_back(i, why);
      }
      continue;
    }
    auto event = pipeline::decode_event(messages[i].data, &why);
    if (event) {
      rows.push_back({i, std::move(*event)});
    } else {
      dead.emplace_back(i, why);
    }
  }
  std::sort(rows.begin(), rows.end(), [](const DecodedRow& a, const DecodedRow& b) {
    return std::tie(a.event.topic, a.event.event_id) < std::tie(b.event.topic, b.event.event_id);
  });

  std::vector<std::string> topics;
  std::vector<std::string> event_ids;
  std::vector<std::string> timestamps;
  std::vector<std::string> sources;
  std::vector<std::string> payloads;
  std::vector<std::string> seqs;
  for (const auto& row : rows) {
    topics.push_back(row.event.topic);
    event_ids.push_back(row.event.event_id);
    timestamps.push_back(row.event.timestamp);
    sources.push_back(row.event.source);
    payloads.push_back(row.event.payload_json);
    seqs.push_back(std::to_string(messages[row.message_index].stream_seq));
  }

  connect();
  pqxx::work tx(*conn_);
  std::set<std::uint64_t> inserted_seqs;
  if (!rows.empty()) {
    const std::string topic_array = to_pg_array(topics);
    const std::string event_id_array = to_pg_array(event_ids);
    const pqxx::result inserted =
        tx.exec_prepared("insert_events", topic_array, event_id_array, to_pg_array(timestamps),
                         to_pg_array(sources), to_pg_array(payloads), to_pg_array(seqs));
    for (const auto& r : inserted) inserted_seqs.insert(r[0].as<std::uint64_t>());

    std::map<std::pair<std::string, std::string>, std::uint64_t> stored_seq;
    if (inserted.size() < rows.size()) {
      const pqxx::result existing = tx.exec_prepared("existing_seqs", topic_array, event_id_array);
      for (const auto& r : existing) {
        stored_seq[{r[1].as<std::string>(), r[2].as<std::string>()}] = r[0].as<std::uint64_t>();
      }
    }
    for (const auto& row : rows) {
      const std::uint64_t seq = messages[row.message_index].stream_seq;
      StoreOutcome outcome = StoreOutcome::kStored;
      if (inserted_seqs.count(seq) == 0) {
        const auto it = stored_seq.find({row.event.topic, row.event.event_id});
        outcome = it != stored_seq.end() && it->second == seq ? StoreOutcome::kRedelivered
                                                              : StoreOutcome::kDuplicate;
      }
      result.outcomes[row.message_index] = outcome;
    }
    record_duplicates(tx, messages, rows, result.outcomes);
  }
  result.broker_duplicates = record_markers(tx, messages, markers, result.outcomes);
  for (const auto& marker : markers) {
    if (result.outcomes[marker.first] == StoreOutcome::kBrokerDuplicate) {
      ++result.markers;
    } else {
      ++result.redelivered;
    }
  }
  for (const auto& [index, reason] : dead) {
    const IncomingMessage& m = messages[index];
    const pqxx::result fresh = tx.exec_prepared(
        "dead_letter", static_cast<std::int64_t>(m.stream_seq), m.subject, reason, to_hex(m.data));
    // A redelivered dead letter is already kept (and counted).
    result.dead_lettered += fresh.size();
    result.outcomes[index] = StoreOutcome::kDeadLettered;
  }

  result.redelivered += repeats;

  // Counters, in the same transaction as the rows they count.
  std::map<std::string, std::int64_t> per_topic;
  for (const auto& row : rows) {
    switch (result.outcomes[row.message_index]) {
      case StoreOutcome::kStored:
        ++result.stored;
        ++per_topic[row.event.topic];
        break;
      case StoreOutcome::kDuplicate:
        ++result.duplicates;
        break;
      case StoreOutcome::kRedelivered:
        ++result.redelivered;
        break;
      case StoreOutcome::kDeadLettered:
      case StoreOutcome::kBrokerDuplicate:
        break;
    }
  }

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
  const pqxx::result fresh =
      tx.exec_prepared("dead_letter", static_cast<std::int64_t>(message.stream_seq),
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

std::size_t BatchWriter::prune_duplicate_deliveries(std::uint64_t ack_floor) {
  connect();
  pqxx::work tx(*conn_);
  const auto floor = static_cast<std::int64_t>(ack_floor);
  const pqxx::result deliveries = tx.exec_prepared("prune_duplicates", floor);
  const pqxx::result markers = tx.exec_prepared("prune_markers", floor);
  tx.commit();
  return deliveries.affected_rows() + markers.affected_rows();
}

}  // namespace processor
