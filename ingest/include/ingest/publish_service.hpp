#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pipeline/event.hpp"

namespace ingest {

class JetStreamPublisher;
struct IngestMetrics;
struct PublishOutcome;
struct PublishCall;

/// The overall result of one POST /publish, which the HTTP layer maps to a
/// status code in one switch.
enum class PublishOutcomeKind {
  kOk,             ///< at least one event accepted or duplicate, none waiting for a retry
  kAllRejected,    ///< every event failed validation
  kBodyInvalid,    ///< the body is not JSON or not of a known shape
  kTooManyEvents,  ///< more events than max_events_per_request
  kRetryLater,     ///< some valid event has no PubAck: safe to retry
};

/// What became of one event of a request.
enum class EventStatus {
  kAccepted,   ///< stored by the broker
  kDuplicate,  ///< already in the broker's duplicate window
  kRejected,   ///< invalid (error names the field and the rule), or refused by the broker for good
  kFailed,     ///< no PubAck in time: retry it (a retry is safe)
};
/// The status as the API spells it: accepted, duplicate, rejected, failed.
const char* event_status_name(EventStatus status);

/// Why an event was rejected: the part of it a rule is about, or the broker.
enum class RejectReason { kEvent, kTopic, kEventId, kTimestamp, kSource, kPayload, kBroker };
/// The reason as a metric label: event, topic, event_id, ..., broker.
const char* reject_reason_name(RejectReason reason);

struct EventResult {
  std::size_t index = 0;
  std::string topic;
  std::string event_id;
  EventStatus status = EventStatus::kFailed;
  RejectReason reason = RejectReason::kEvent;  ///< for kRejected
  std::string field;  ///< for kRejected: the field or attribute the error is about
  std::string error;
};

/// The format of a POST /publish body, as the HTTP layer found it.
enum class BodyFormat {
  kJson,              ///< one event, an array of events, or {"events": [...]}
  kNdjson,            ///< one event per line (application/x-ndjson)
  kCloudEvent,        ///< structured-mode CloudEvent (application/cloudevents+json)
  kCloudEventBatch,   ///< a CloudEvents batch (application/cloudevents-batch+json)
  kCloudEventBinary,  ///< binary-mode CloudEvent: attributes in ce- headers, body = data
};

/// One publish request, free of HTTP.
struct PublishInput {
  BodyFormat format = BodyFormat::kJson;
  std::string_view body;  ///< decoded (no Content-Encoding left); must outlive publish()
  /// Binary mode: the CloudEvents attributes (header names without "ce-",
  /// in lower case; values percent-decoded).
  std::vector<std::pair<std::string, std::string>> attributes;
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
  using Done = std::function<void(PublishReport)>;

  /// Why the database's storage refuses events now, or "" (DependencyMonitor).
  using StorageCheck = std::function<std::string()>;

  /// `metrics` may be null; without `storage`, storage never refuses.
  PublishService(JetStreamPublisher& publisher, pipeline::ValidationLimits limits,
                 IngestMetrics* metrics = nullptr, StorageCheck storage = {})
      : publisher_(publisher), limits_(limits), metrics_(metrics), storage_(std::move(storage)) {}

  /// Reads the body in its format, publishes, and calls `done` once with the
  /// report: at once (on this thread) when nothing is to be published, else
  /// when the broker's answers are in (on a broker thread; `done` must not
  /// block). `request_id` travels with each event to the processor's logs.
  /// The body is read before publish() returns.
  void publish(const PublishInput& input, const std::string& request_id, Done done);
  /// What publish() does once the body is read: every protocol's decoder
  /// (OTLP, Elasticsearch bulk, Loki push) gives its verdicts here, so that
  /// each takes the one publish path. `done` as for publish().
  void publish_body(pipeline::PublishBody body, const std::string& request_id, Done done);
  /// publish() of a native JSON body.
  void publish(std::string_view body, const std::string& request_id, Done done) {
    publish(PublishInput{BodyFormat::kJson, body, {}}, request_id, std::move(done));
  }

  /// publish() and wait for the report: for tools and tests.
  PublishReport publish_and_wait(std::string_view body, const std::string& request_id = "");
  PublishReport publish_and_wait(const PublishInput& input, const std::string& request_id = "");

 private:
  pipeline::PublishBody parse(const PublishInput& input) const;
  void on_events_published(const std::shared_ptr<PublishCall>& call,
                           const std::vector<PublishOutcome>& outcomes, bool marker_admitted);
  void on_marker_published(const std::shared_ptr<PublishCall>& call,
                           const std::vector<std::size_t>& duplicate_results,
                           const PublishOutcome& marker);
  void finish(const std::shared_ptr<PublishCall>& call);

  JetStreamPublisher& publisher_;
  pipeline::ValidationLimits limits_;
  IngestMetrics* metrics_;
  StorageCheck storage_;
};

}  // namespace ingest
