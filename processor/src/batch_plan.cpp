#include "batch_plan.hpp"

#include <algorithm>
#include <set>

namespace processor {
namespace {

// More duplicates than one request can carry means a marker ingest did not write.
constexpr std::uint64_t kMaxMarkerCount = 1'000'000;

bool same_key(const DecodedRow& a, const DecodedRow& b) {
  return a.event.topic == b.event.topic && a.event.event_id == b.event.event_id;
}

}  // namespace

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

BatchPlan plan_batch(const std::vector<IncomingMessage>& messages,
                     std::vector<StoreOutcome>& outcomes) {
  BatchPlan plan;
  plan.rows.reserve(messages.size());
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
        plan.markers.emplace_back(i, count);
      } else {
        plan.dead.emplace_back(i, why);
      }
    } else if (auto event = pipeline::decode_event(m.data, &why)) {
      plan.rows.push_back({i, std::move(*event)});
    } else {
      plan.dead.emplace_back(i, why);
    }
  }
  // By key, then by stream position, so that the first copy of a key in the
  // batch is the one the broker accepted first (first write wins).
  std::sort(plan.rows.begin(), plan.rows.end(), [&](const DecodedRow& a, const DecodedRow& b) {
    const int topic = a.event.topic.compare(b.event.topic);
    if (topic != 0) return topic < 0;
    const int id = a.event.event_id.compare(b.event.event_id);
    if (id != 0) return id < 0;
    return messages[a.message_index].position < messages[b.message_index].position;
  });
  // Later copies in the same batch are duplicates of whatever their key ends
  // up holding.
  for (std::size_t i = 0; i < plan.rows.size(); ++i) {
    const DecodedRow& row = plan.rows[i];
    if (i > 0 && same_key(plan.rows[i - 1], row)) {
      outcomes[row.message_index] = StoreOutcome::kDuplicate;
      plan.duplicates.push_back({messages[row.message_index].position, row.event.topic,
                                 row.event.event_id, row.message_index});
    } else {
      plan.firsts.push_back(i);
    }
  }
  return plan;
}

CounterDeltas tally(BatchResult& result, const BatchPlan& plan) {
  CounterDeltas deltas;
  for (const auto& row : plan.rows) {
    if (result.outcomes[row.message_index] == StoreOutcome::kStored) {
      ++deltas.per_topic[row.event.topic];
    }
  }
  for (const StoreOutcome outcome : result.outcomes) {
    if (outcome == StoreOutcome::kStored) ++result.stored;
    if (outcome == StoreOutcome::kRedelivered) ++result.redelivered;
    if (outcome == StoreOutcome::kBrokerDuplicate) ++result.markers;
  }
  const auto add = [&](const char* name, std::size_t value) {
    if (value != 0) deltas.totals.emplace_back(name, static_cast<std::int64_t>(value));
  };
  add("dead_lettered", result.dead_lettered);
  add("duplicate_database", result.duplicates);
  add("duplicate_broker", result.broker_duplicates);
  add("unique_processed", result.stored);
  return deltas;
}

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

}  // namespace processor
