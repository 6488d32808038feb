#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "processor/message.hpp"

namespace processor {

class KeyFilters;
class PartitionBounds;

/// Writes a batch of messages to PostgreSQL in ONE transaction: the events
/// (first write wins: of two copies of a key, the one the broker accepted
/// first is kept, whichever commits first), the dead letters, and the durable
/// counters, then COMMIT. The caller acks the messages only after write()
/// returned.
class BatchWriter final : public MessageWriter {
 public:
  /// Does not connect: write() and connect() do. Each transaction (and each
  /// connect) is cut on the client's side after `deadline` (pipeline::db::
  /// Deadline): a server that stops answering costs a batch that long, not
  /// forever.
  ///
  /// `filters` (nullable): the key filters of sealed partitions
  /// (processor/src/key_filters.hpp) that spare their lookups.
  explicit BatchWriter(std::string database_url,
                       std::chrono::milliseconds deadline = std::chrono::seconds(12),
                       std::shared_ptr<const KeyFilters> filters = nullptr);
  ~BatchWriter() override;
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  /// Throws (a pqxx exception; pipeline::db::classify_failure says what it
  /// means) when the batch did not commit or its commit outcome is unknown;
  /// nothing is to be acked then. A retry of the same messages is safe: a
  /// message handled before is recognised by its stream position.
  BatchResult write(const std::vector<IncomingMessage>& messages) override;

  /// Stores one message that no retry can fix in dead_letters (once per
  /// stream position) and counts it. Throws pqxx errors.
  void dead_letter(const IncomingMessage& message, const std::string& reason) override;

  /// Forgets the duplicates and count markers the stream can never deliver
  /// again: those of other incarnations than `current` and those below
  /// `first_seq`, the stream's first sequence; folds the per-topic counts
  /// into one row per topic (topic_totals). Returns the rows removed.
  std::size_t prune(std::int64_t current, std::uint64_t first_seq);

  /// Connects if not connected (one attempt) and prepares the statements.
  /// Throws pqxx::broken_connection.
  void connect();
  bool connected() const;

  /// Drops the connection; the next write() reconnects.
  void reset() override;

 private:
  std::string database_url_;
  std::chrono::milliseconds deadline_;
  std::unique_ptr<pqxx::connection> conn_;
  std::shared_ptr<const KeyFilters> filters_;
  std::unique_ptr<PartitionBounds> bounds_;  ///< read on this writer's connection
  std::uint32_t shard_seed_;
};

/// Builds a PostgreSQL array literal ({"a","b"}) of `values`, escaped.
/// Written by hand because libpqxx 6.4 has no conversion from a container
/// to an array parameter (7.x has one); unnest($n::type[]) turns it back
/// into rows.
std::string to_pg_array(const std::vector<std::string>& values);

}  // namespace processor
