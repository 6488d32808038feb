#include "processor/settlement.hpp"

#include <algorithm>

namespace processor {
namespace {

using pipeline::db::FailureKind;

// The connection cannot be trusted after these: no point in trying the rest.
bool connection_lost(FailureKind kind) {
  return kind == FailureKind::kUnavailable || kind == FailureKind::kOutcomeUnknown;
}

Settlement ack(StoreOutcome outcome) {
  return {Settlement::Action::kAck, outcome, std::chrono::milliseconds(0)};
}

Settlement retry_later(const IncomingMessage& message, const RetryPolicy& retry) {
  return {Settlement::Action::kRetry, std::nullopt, retry.delay(message.deliveries)};
}

class FailureLog {
 public:
  explicit FailureLog(BatchSettlement& out) : out_(out) {}
  FailureKind add(const std::exception& error) {
    const FailureKind kind = pipeline::db::classify_failure(error);
    out_.failures.push_back(kind);
    if (out_.first_error.empty()) out_.first_error = error.what();
    return kind;
  }

 private:
  BatchSettlement& out_;
};

}  // namespace

std::chrono::milliseconds RetryPolicy::delay(std::uint64_t deliveries) const {
  const std::uint64_t doublings = std::min<std::uint64_t>(deliveries > 0 ? deliveries - 1 : 0, 20);
  const auto scaled = base.count() * (std::int64_t{1} << doublings);
  return std::chrono::milliseconds(std::min<std::int64_t>(scaled, max.count()));
}

BatchSettlement settle_batch(MessageWriter& writer, const std::vector<IncomingMessage>& messages,
                             const RetryPolicy& retry) {
  BatchSettlement out;
  FailureLog failures(out);
  out.messages.reserve(messages.size());
  try {
    const BatchResult result = writer.write(messages);
    for (const StoreOutcome outcome : result.outcomes) out.messages.push_back(ack(outcome));
    out.committed_batches = 1;
    return out;
  } catch (const std::exception& error) {
    writer.reset();
    const FailureKind kind = failures.add(error);
    // Alone, a message that can never be stored goes on to dead_letters
    // below; any other failure of a lone message, or a lost connection, is
    // a retry for every message.
    const bool lone = messages.size() == 1;
    if (connection_lost(kind) || (lone && kind != FailureKind::kNeverStorable)) {
      for (const auto& m : messages) out.messages.push_back(retry_later(m, retry));
      return out;
    }
  }

  out.split = true;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const IncomingMessage& message = messages[i];
    FailureKind kind = FailureKind::kNeverStorable;
    std::string reason;
    if (messages.size() == 1) {
      reason = out.first_error;  // the batch was this one message
    } else {
      try {
        out.messages.push_back(ack(writer.write({message}).outcomes.front()));
        ++out.committed_batches;
        continue;
      } catch (const std::exception& error) {
        writer.reset();
        kind = failures.add(error);
        reason = error.what();
      }
    }
    if (kind == FailureKind::kNeverStorable) {
      try {
        writer.dead_letter(message, reason);
        out.messages.push_back(ack(StoreOutcome::kDeadLettered));
        ++out.committed_batches;
        continue;
      } catch (const std::exception& error) {
        writer.reset();
        kind = failures.add(error);
      }
    }
    out.messages.push_back(retry_later(message, retry));
    if (connection_lost(kind)) {
      for (std::size_t rest = i + 1; rest < messages.size(); ++rest) {
        out.messages.push_back(retry_later(messages[rest], retry));
      }
      break;
    }
  }
  return out;
}

}  // namespace processor
