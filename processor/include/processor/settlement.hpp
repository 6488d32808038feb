#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/database.hpp"
#include "processor/message.hpp"

namespace processor {

/// How long a message that failed for a reason that passes waits before the
/// broker delivers it again: `base` after its first delivery, doubling with
/// each further delivery, never more than `max`.
struct RetryPolicy {
  std::chrono::milliseconds base{1000};
  std::chrono::milliseconds max{30000};

  std::chrono::milliseconds delay(std::uint64_t deliveries) const;
};

/// What becomes of one fetched message.
struct Settlement {
  enum class Action { kAck, kRetry };
  Action action = Action::kRetry;
  /// For kAck: what the write did with it.
  std::optional<StoreOutcome> outcome;
  /// For kRetry: the NAK delay.
  std::chrono::milliseconds delay{0};
};

/// The settlements of one batch and why some failed.
struct BatchSettlement {
  std::vector<Settlement> messages;  ///< one per message, in order
  /// The failures met, in order (a batch, then each message on its own).
  std::vector<pipeline::db::FailureKind> failures;
  std::string first_error;            ///< the text of the first failure, for the log
  bool split = false;                 ///< the batch was written one message at a time
  std::size_t committed_batches = 0;  ///< transactions that committed
};

/// Writes a batch and decides, from one classification of errors
/// (pipeline::db::classify_failure), what becomes of each message:
/// - the batch commits: every message is acked;
/// - the connection is gone or the commit outcome unknown: every message is
///   retried later (a retry is safe: handled messages are recognised);
/// - otherwise the messages are written one by one, so that one message
///   cannot hold the others back: each that commits is acked, each that can
///   never be stored goes to dead_letters (and is acked), each that failed for
///   a reason that passes is retried later; if the connection goes, the rest
///   are retried later.
/// Never throws for database errors. Acks happen only after COMMIT: the
/// caller acts on the result once this returns.
BatchSettlement settle_batch(MessageWriter& writer, const std::vector<IncomingMessage>& messages,
                             const RetryPolicy& retry);

}  // namespace processor
