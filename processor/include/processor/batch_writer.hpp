#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <pqxx/connection>

namespace processor {

/// One message as fetched from the stream.
struct IncomingMessage {
  std::uint64_t stream_seq = 0;
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
  kDuplicate,        ///< the key was already stored by another message
  kRedelivered,      ///< this very message (same stream sequence) was stored before
  kDeadLettered,     ///< cannot be decoded or stored: kept in dead_letters
  kBrokerDuplicate,  ///< a count marker: duplicates the broker dropped, counted
};

struct BatchResult {
  std::vector<StoreOutcome> outcomes;  ///< one per message, in order
  std::size_t stored = 0;
  std::size_t duplicates = 0;
  std::size_t redelivered = 0;
  std::size_t dead_lettered = 0;
  std::size_t broker_duplicates = 0;  ///< duplicates the counted markers carry (events)
  std::size_t markers = 0;            ///< markers counted (messages)
};

/// Writes a batch of messages to PostgreSQL in ONE transaction:
/// INSERT ... ON CONFLICT (topic, event_id) DO NOTHING for the events, the
/// dead letters, and the durable counters, then COMMIT. The caller acks the
/// messages only after write() returned.
class BatchWriter {
 public:
  /// Does not connect: write() and connect() do.
  explicit BatchWriter(std::string database_url);
  ~BatchWriter();
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  /// Throws a pqxx exception when the batch did not commit (or its commit
  /// outcome is unknown); nothing is to be acked then. A retry of the same
  /// messages is safe: stored rows are recognised by their stream sequence.
  BatchResult write(const std::vector<IncomingMessage>& messages);

  /// Forgets duplicate deliveries and counted markers at or below the
  /// consumer's ack floor: they can never be redelivered. Returns how many
  /// rows it removed.
  std::size_t prune_duplicate_deliveries(std::uint64_t ack_floor);

  /// Stores one message that no retry can fix in dead_letters.
  void dead_letter(const IncomingMessage& message, const std::string& reason);

  /// Connects if not connected (one attempt) and prepares the statements.
  /// Throws pqxx::broken_connection.
  void connect();
  bool connected() const;

  /// Drops the connection; the next write() reconnects.
  void reset();

 private:
  std::string database_url_;
  std::unique_ptr<pqxx::connection> conn_;
  std::uint32_t shard_seed_;
};

/// Builds a PostgreSQL array literal ({"a","b"}) of `values`, escaped.
std::string to_pg_array(const std::vector<std::string>& values);

}  // namespace processor
