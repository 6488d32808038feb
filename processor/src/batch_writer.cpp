#include "processor/batch_writer.hpp"

#include "pipeline/database.hpp"

#include <map>
#include <pqxx/pqxx>
#include <random>
#include <set>

#include "batch_plan.hpp"
#include "batch_sql.hpp"
#include "key_filters.hpp"
#include "partition_bounds.hpp"
#include "pipeline/fault.hpp"
#include "pipeline/timestamp.hpp"

namespace processor {
namespace {

constexpr int kCounterShards = 64;

StreamPosition position_of(const pqxx::row& row, int created_column) {
  return {row[created_column].as<std::int64_t>(), row[created_column + 1].as<std::uint64_t>()};
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
    if (r.message_index != kDisplaced && fresh_positions.count(r.position) == 0) {
      outcomes[r.message_index] = StoreOutcome::kRedelivered;
    }
  }
  return fresh.size();
}

// A first copy whose key is stored already: the earlier stream position
// wins (decided under the row lock); else it is a duplicate, or this very
// message again.
void settle_stored_key(pqxx::work& tx, const DecodedRow& row, const StreamPosition& at,
                       StreamPosition existing, std::vector<DuplicateRecord>& duplicates,
                       std::vector<StoreOutcome>& outcomes) {
  const pipeline::Event& event = row.event;
  if (at < existing) {
    // Possibly a first write that arrives late: decide under the row lock.
    const pqxx::result locked = tx.exec_prepared("lock_event", event.topic, event.event_id);
    if (!locked.empty()) existing = position_of(locked[0], 0);
    if (at < existing) {
      tx.exec_prepared("replace_event", event.topic, event.event_id, event.timestamp, event.source,
                       event.payload_json, at.created, static_cast<std::int64_t>(at.seq));
      outcomes[row.message_index] = StoreOutcome::kReplaced;
      // The displaced copy was counted as stored when it got there: it now
      // counts as a duplicate instead (and its own redelivery is recognised).
      duplicates.push_back({existing, event.topic, event.event_id, kDisplaced});
      return;
    }
  }
  if (existing == at) {
    outcomes[row.message_index] = StoreOutcome::kRedelivered;
  } else {
    outcomes[row.message_index] = StoreOutcome::kDuplicate;
    duplicates.push_back({at, event.topic, event.event_id, row.message_index});
  }
}

using KeyPositions = std::map<std::pair<std::string, std::string>, StreamPosition>;

std::string timestamp_literal(const std::optional<std::int64_t>& micros) {
  return micros ? pipeline::format_rfc3339(pipeline::UtcTimestamp{*micros}) : "-infinity";
}

// A uuid[] literal of these keys (uuid text has nothing to escape).
std::string key_array(const std::vector<KeyHash>& keys) {
  std::string out;
  out.reserve(2 + keys.size() * 37);
  out += '{';
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i != 0) out += ',';
    append_key_text(out, keys[i]);
  }
  out += '}';
  return out;
}

// The stored position of each of these keys that any partition holds: the
// partitions the filters cover only for the keys a filter may hold.
void read_existing(pqxx::work& tx, const std::vector<std::string>& topics,
                   const std::vector<std::string>& event_ids, const FilterSet& filters,
                   KeyPositions& out) {
  std::vector<KeyHash> keys;
  keys.reserve(topics.size());
  for (std::size_t i = 0; i < topics.size(); ++i)
    keys.push_back(event_key(topics[i], event_ids[i]));
  // Each check is a cache miss in a filter of its own: one filter at a
  // time, each key's line asked for kPrefetchAhead keys before it is read,
  // so that the misses overlap (48 filters of 1 M keys, 360 keys: 0.33 to
  // 0.35 ms a batch against 0.49 to 0.56 key by key, by a throwaway program).
  constexpr std::size_t kPrefetchAhead = 8;
  std::vector<KeyHash> hit_keys;
  std::vector<std::string> hit_bounds[2];  // the partition's start, end
  for (const auto& filter : filters.filters) {
    const KeyBloom& bloom = filter->bloom;
    const std::size_t hits_before = hit_keys.size();
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (i + kPrefetchAhead < keys.size()) bloom.prefetch(keys[i + kPrefetchAhead]);
      if (bloom.may_contain(keys[i])) hit_keys.push_back(keys[i]);
    }
    if (hit_keys.size() == hits_before) continue;
    // This filter's hits, each with its partition's bounds.
    hit_bounds[0].resize(hit_keys.size(), timestamp_literal(filter->from_micros));
    hit_bounds[1].resize(hit_keys.size(), timestamp_literal(filter->to_micros));
  }
  const auto note = [&out](const pqxx::result& found) {
    for (const auto& r : found)
      out[{r[0].as<std::string>(), r[1].as<std::string>()}] = position_of(r, 2);
  };
  note(tx.exec_params(sql::kExistingInUnfiltered, key_array(keys), timestamp_literal(filters.cut)));
  if (!hit_keys.empty()) {
    note(tx.exec_prepared("existing_in_filtered", key_array(hit_keys), to_pg_array(hit_bounds[0]),
                          to_pg_array(hit_bounds[1])));
  }
}

// Inserts the first copy of each key no partition holds; settles the others.
void insert_firsts(pqxx::work& tx, const std::vector<IncomingMessage>& messages, BatchPlan& plan,
                   std::vector<StoreOutcome>& outcomes, bool near_partition_end,
                   const FilterSet& filters) {
  if (plan.firsts.empty()) return;
  std::vector<std::string> keys[2];  // topic, event_id of every first copy
  for (const std::size_t i : plan.firsts) {
    keys[0].push_back(plan.rows[i].event.topic);
    keys[1].push_back(plan.rows[i].event.event_id);
  }
  if (near_partition_end) {
    tx.exec_prepared("lock_keys", to_pg_array(keys[0]), to_pg_array(keys[1]));
  }
  KeyPositions stored_at;
  read_existing(tx, keys[0], keys[1], filters, stored_at);
  std::vector<std::string> columns[7];  // topic, event_id, ts, source, payload, created, seq
  for (const std::size_t i : plan.firsts) {
    const DecodedRow& row = plan.rows[i];
    if (stored_at.count({row.event.topic, row.event.event_id}) != 0) continue;
    const StreamPosition& at = messages[row.message_index].position;
    columns[0].push_back(row.event.topic);
    columns[1].push_back(row.event.event_id);
    columns[2].push_back(row.event.timestamp);
    columns[3].push_back(row.event.source);
    columns[4].push_back(row.event.payload_json);
    columns[5].push_back(std::to_string(at.created));
    columns[6].push_back(std::to_string(at.seq));
  }
  std::set<StreamPosition> inserted_positions;
  if (!columns[0].empty()) {
    const pqxx::result inserted =
        tx.exec_prepared("insert_events", to_pg_array(columns[0]), to_pg_array(columns[1]),
                         to_pg_array(columns[2]), to_pg_array(columns[3]), to_pg_array(columns[4]),
                         to_pg_array(columns[5]), to_pg_array(columns[6]));
    for (const auto& r : inserted) inserted_positions.insert(position_of(r, 0));
    // Stored by a transaction that committed while this one waited on it.
    if (inserted.size() < columns[0].size())
      read_existing(tx, columns[0], columns[1], filters, stored_at);
  }
  for (const std::size_t i : plan.firsts) {
    const DecodedRow& row = plan.rows[i];
    const StreamPosition& at = messages[row.message_index].position;
    if (inserted_positions.count(at) != 0) continue;  // kStored
    const auto it = stored_at.find({row.event.topic, row.event.event_id});
    settle_stored_key(tx, row, at, it != stored_at.end() ? it->second : StreamPosition{},
                      plan.duplicates, outcomes);
  }
}

// Keeps what no retry can store; a redelivered dead letter is kept (and
// counted) already. Returns how many are new.
std::size_t record_dead_letters(pqxx::work& tx, const std::vector<IncomingMessage>& messages,
                                const std::vector<std::pair<std::size_t, std::string>>& dead,
                                std::vector<StoreOutcome>& outcomes) {
  std::size_t fresh = 0;
  for (const auto& [index, reason] : dead) {
    const IncomingMessage& m = messages[index];
    fresh += tx.exec_prepared("dead_letter", m.position.created,
                              static_cast<std::int64_t>(m.position.seq), m.subject, reason,
                              to_hex(m.data))
                 .size();
    outcomes[index] = StoreOutcome::kDeadLettered;
  }
  return fresh;
}

// Counters, in the same transaction as the rows they count.
void add_counters(pqxx::work& tx, int shard, const CounterDeltas& deltas) {
  std::vector<std::string> names;
  std::vector<std::string> values;
  for (const auto& [name, value] : deltas.totals) {
    names.push_back(name);
    values.push_back(std::to_string(value));
  }
  if (!names.empty()) {
    tx.exec_prepared("add_counters", shard, to_pg_array(names), to_pg_array(values));
  }
  if (deltas.per_topic.empty()) return;
  names.clear();
  values.clear();
  for (const auto& [topic, count] : deltas.per_topic) {
    names.push_back(topic);
    values.push_back(std::to_string(count));
  }
  tx.exec_prepared("add_topic_counters", shard, to_pg_array(names), to_pg_array(values));
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

BatchWriter::BatchWriter(std::string database_url, std::chrono::milliseconds deadline,
                         std::shared_ptr<const KeyFilters> filters)
    : database_url_(std::move(database_url)),
      deadline_(deadline),
      filters_(std::move(filters)),
      bounds_(std::make_unique<PartitionBounds>()),
      shard_seed_(std::random_device{}()) {}

BatchWriter::~BatchWriter() = default;

void BatchWriter::reset() { conn_.reset(); }

bool BatchWriter::connected() const { return conn_ && conn_->is_open(); }

void BatchWriter::connect() {
  if (connected()) return;
  conn_.reset();
  conn_ = std::make_unique<pqxx::connection>(database_url_);
  const pipeline::db::Deadline deadline(*conn_, deadline_);
  sql::prepare(*conn_);
  PartitionBounds::prepare(*conn_);
}

BatchResult BatchWriter::write(const std::vector<IncomingMessage>& messages) {
  BatchResult result;
  result.outcomes.assign(messages.size(), StoreOutcome::kStored);
  if (messages.empty()) return result;
  BatchPlan plan = plan_batch(messages, result.outcomes);
  connect();
  const pipeline::db::Deadline deadline(*conn_, deadline_);
  pqxx::work tx(*conn_);
  // A transaction lasts at most deadline_: a key's two copies can go to two
  // partitions only within that (and a margin) of a partition bound.
  const double bound_window = std::chrono::duration<double>(deadline_).count() + 5.0;
  const bool near_partition_end = !plan.firsts.empty() && bounds_->near_end(tx, bound_window);
  const auto filters = filters_ ? filters_->snapshot() : std::make_shared<const FilterSet>();
  insert_firsts(tx, messages, plan, result.outcomes, near_partition_end, *filters);
  result.duplicates = record_duplicates(tx, plan.duplicates, result.outcomes);
  result.broker_duplicates = record_markers(tx, messages, plan.markers, result.outcomes);
  result.dead_lettered = record_dead_letters(tx, messages, plan.dead, result.outcomes);
  add_counters(tx, static_cast<int>(shard_seed_++ % kCounterShards), tally(result, plan));
  pipeline::fault::crash_point("processor.after_insert_before_commit");
  tx.commit();
  return result;
}

void BatchWriter::dead_letter(const IncomingMessage& message, const std::string& reason) {
  connect();
  const pipeline::db::Deadline deadline(*conn_, deadline_);
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
  const pipeline::db::Deadline deadline(*conn_, deadline_);
  pqxx::work tx(*conn_);
  const auto first = static_cast<std::int64_t>(first_seq);
  const pqxx::result deliveries = tx.exec_prepared("prune_duplicates", current, first);
  const pqxx::result markers = tx.exec_prepared("prune_markers", current, first);
  tx.exec_prepared("compact_topic_counters");
  tx.commit();
  return deliveries.affected_rows() + markers.affected_rows();
}

}  // namespace processor
