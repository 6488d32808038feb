#pragma once

// What BatchWriter decides before and after it talks to PostgreSQL: pure
// functions of the messages, unit-tested without a database.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/event.hpp"
#include "processor/message.hpp"

namespace processor {

/// An event decoded from the message at `message_index`.
struct DecodedRow {
  std::size_t message_index;
  pipeline::Event event;
};

/// A message whose key is stored by another message: remembered by stream
/// position, so that its redelivery is not counted again.
struct DuplicateRecord {
  StreamPosition position;
  std::string topic;
  std::string event_id;
  std::size_t message_index;  ///< the message it is, or kDisplaced
};
/// A DuplicateRecord of a stored copy that a first write took the place of.
inline constexpr std::size_t kDisplaced = SIZE_MAX;

/// A batch taken apart.
struct BatchPlan {
  /// The events, sorted by key (the lock order: no deadlock between
  /// processors), then by stream position.
  std::vector<DecodedRow> rows;
  /// Indexes into `rows` of the first copy of each key: what the INSERT gets.
  std::vector<std::size_t> firsts;
  /// Later copies of a key inside the batch (kDuplicate already).
  std::vector<DuplicateRecord> duplicates;
  std::vector<std::pair<std::size_t, std::uint64_t>> markers;  ///< message index, count
  std::vector<std::pair<std::size_t, std::string>> dead;       ///< message index, reason
};

/// Decodes and sorts `messages`, setting the outcomes decided without the
/// database (a second copy of one message in the batch: kRedelivered; a
/// later copy of a key: kDuplicate).
BatchPlan plan_batch(const std::vector<IncomingMessage>& messages,
                     std::vector<StoreOutcome>& outcomes);

/// The count a broker-duplicate marker carries, or 0 (and `why`) when its
/// body is not a decimal count.
std::uint64_t marker_count(const std::string& body, std::string* why);

/// What a committed batch adds to the durable counters.
struct CounterDeltas {
  std::vector<std::pair<std::string, std::int64_t>> totals;  ///< name, value (non-zero only)
  std::map<std::string, std::int64_t> per_topic;             ///< new keys per topic
};

/// Fills the totals of `result` from its outcomes and says what the
/// counters gain.
CounterDeltas tally(BatchResult& result, const BatchPlan& plan);

/// Lower-case hex of `bytes` (dead letters keep the raw message).
std::string to_hex(const std::string& bytes);

}  // namespace processor
