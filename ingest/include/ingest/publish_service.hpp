#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/event.hpp"

namespace ingest {

class JetStreamPublisher;
struct IngestMetrics;

/// The overall result of one POST /publish, which the HTTP layer maps to a
/// status code in one switch.
enum class PublishOutcomeKind {
  kOk,             ///< at least one event accepted or duplicate, none waiting for a retry
  kAllRejected,    ///< every event failed validation
  kBodyInvalid,    ///< the body is not JSON or not of a known shape
  kTooManyEvents,  ///< more events than max_events_per_request
  kRetryLater,     ///< some valid event has no PubAck: safe to retry
};

struct EventResult {
  std::size_t index = 0;
  std::string topic;
  std::string event_id;
  std::string status;  ///< accepted | duplicate | rejected | failed
  std::string error;
};

struct PublishReport {
  PublishOutcomeKind kind = PublishOutcomeKind::kOk;
  std::string error;  ///< for body-level failures
  std::size_t received = 0;
  std::size_t accepted = 0;
  std::size_t duplicates = 0;
  std::size_t rejected = 0;
  std::size_t failed = 0;
  std::vector<EventResult> results;

  /// The response body: {"received", "accepted", "duplicates", "rejected",
  /// "failed", "results": [...]} or {"error": ...}.
  std::string to_json() const;
};

/// Validates a publish body, publishes the valid events and, when the broker
/// dropped some as duplicates, one count marker for them. Knows nothing of
/// HTTP or of the database.
class PublishService {
 public:
  /// `metrics` may be null.
  PublishService(JetStreamPublisher& publisher, pipeline::ValidationLimits limits,
                 IngestMetrics* metrics = nullptr)
      : publisher_(publisher), limits_(limits), metrics_(metrics) {}

  /// `request_id` travels with each event to the processor's logs.
  PublishReport publish(std::string_view body, const std::string& request_id = "");

 private:
  JetStreamPublisher& publisher_;
  pipeline::ValidationLimits limits_;
  IngestMetrics* metrics_;
};

}  // namespace ingest
