#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace processor {

/// Where a message sits in the stream: the stream's incarnation (its creation
/// time in nanoseconds, which changes when the stream is deleted and created
/// again, restarting its sequences at 1) and the stream sequence. Ordered:
/// the broker accepted the smaller position first.
struct StreamPosition {
  std::int64_t created = 0;
  std::uint64_t seq = 0;

  friend bool operator==(const StreamPosition& a, const StreamPosition& b) {
    return a.created == b.created && a.seq == b.seq;
  }
  friend bool operator!=(const StreamPosition& a, const StreamPosition& b) { return !(a == b); }
  friend bool operator<(const StreamPosition& a, const StreamPosition& b) {
    return a.created != b.created ? a.created < b.created : a.seq < b.seq;
  }
};

/// One message as fetched from the stream.
struct IncomingMessage {
  StreamPosition position;
  std::uint64_t deliveries = 1;    ///< how often the broker delivered it (1: the first time)
  std::uint64_t consumer_seq = 0;  ///< the consumer's delivery sequence (0: not a delivery)
  std::string subject;
  std::string data;
  std::int64_t published_micros = 0;  ///< when ingest published it (header), 0 if unknown
  std::string request_id;             ///< ingest's request id (header), for logs
  /// A count marker of broker duplicates (Pipeline-Broker-Duplicate header),
  /// not an event: its body is how many duplicates, in decimal.
  bool broker_duplicate_marker = false;
};

/// What became of one message once its batch committed.
enum class StoreOutcome {
  kStored,           ///< a new (topic, event_id): stored
  kReplaced,         ///< stored in place of a later copy of its key that got there first;
                     ///< that copy now counts as the duplicate
  kDuplicate,        ///< the key was already stored by an earlier message
  kRedelivered,      ///< this very message (same stream position) was handled before
  kDeadLettered,     ///< cannot be decoded or stored: kept in dead_letters
  kBrokerDuplicate,  ///< a count marker: duplicates the broker dropped, counted
};
inline constexpr std::size_t kStoreOutcomes = 6;

/// The outcome's name in metrics and logs.
inline const char* outcome_name(StoreOutcome outcome) {
  switch (outcome) {
    case StoreOutcome::kStored:
      return "stored";
    case StoreOutcome::kReplaced:
      return "replaced";
    case StoreOutcome::kDuplicate:
      return "duplicate";
    case StoreOutcome::kRedelivered:
      return "redelivered";
    case StoreOutcome::kDeadLettered:
      return "dead_lettered";
    case StoreOutcome::kBrokerDuplicate:
      return "duplicate_marker";
  }
  return "unknown";
}

struct BatchResult {
  std::vector<StoreOutcome> outcomes;  ///< one per message, in order
  std::size_t stored = 0;              ///< new keys (unique_processed)
  std::size_t duplicates = 0;          ///< database-stage duplicates counted (duplicate_database)
  std::size_t redelivered = 0;
  std::size_t dead_lettered = 0;
  std::size_t broker_duplicates = 0;  ///< duplicates the counted markers carry (events)
  std::size_t markers = 0;            ///< markers counted (messages)
};

/// Where messages are written: BatchWriter, or a fake in unit tests.
class MessageWriter {
 public:
  virtual ~MessageWriter() = default;
  /// One transaction for all `messages`; throws when it did not commit (or
  /// its outcome is unknown).
  virtual BatchResult write(const std::vector<IncomingMessage>& messages) = 0;
  /// Keeps one message that can never be stored; throws on failure.
  virtual void dead_letter(const IncomingMessage& message, const std::string& reason) = 0;
  /// Drops the connection after a failure; the next call reconnects.
  virtual void reset() = 0;
};

}  // namespace processor
