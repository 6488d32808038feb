#include "ingest/publish_service.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>

#include "ingest/publisher.hpp"
#include "metrics.hpp"
#include "pipeline/cloudevents.hpp"
#include "pipeline/fault.hpp"
#include "pipeline/json_text.hpp"
#include "pipeline/logging.hpp"
#include "pipeline/timestamp.hpp"

namespace ingest {
namespace {

// At most one line a second for a condition that can hit every request (the
// broker down): the others are counted into the next line.
class LogThrottle {
 public:
  /// True when a line may be written now; `*suppressed` is how many were
  /// held back since the last one.
  bool allow(std::uint64_t* suppressed) {
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    auto next = next_.load();
    if (now < next || !next_.compare_exchange_strong(next, now + kInterval)) {
      ++suppressed_;
      return false;
    }
    *suppressed = suppressed_.exchange(0);
    return true;
  }

 private:
  static constexpr std::int64_t kInterval =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::seconds(1))
          .count();
  std::atomic<std::int64_t> next_{0};
  std::atomic<std::uint64_t> suppressed_{0};
};

LogThrottle publish_failed_log;

}  // namespace

namespace {

RejectReason reason_of(pipeline::EventField field) {
  switch (field) {
    case pipeline::EventField::kTopic:
      return RejectReason::kTopic;
    case pipeline::EventField::kEventId:
      return RejectReason::kEventId;
    case pipeline::EventField::kTimestamp:
      return RejectReason::kTimestamp;
    case pipeline::EventField::kSource:
      return RejectReason::kSource;
    case pipeline::EventField::kPayload:
      return RejectReason::kPayload;
    case pipeline::EventField::kEvent:
      break;
  }
  return RejectReason::kEvent;
}

}  // namespace

const char* reject_reason_name(RejectReason reason) {
  using pipeline::EventField;
  switch (reason) {
    case RejectReason::kBroker:
      return "broker";
    case RejectReason::kTopic:
      return pipeline::field_name(EventField::kTopic);
    case RejectReason::kEventId:
      return pipeline::field_name(EventField::kEventId);
    case RejectReason::kTimestamp:
      return pipeline::field_name(EventField::kTimestamp);
    case RejectReason::kSource:
      return pipeline::field_name(EventField::kSource);
    case RejectReason::kPayload:
      return pipeline::field_name(EventField::kPayload);
    case RejectReason::kEvent:
      break;
  }
  return pipeline::field_name(EventField::kEvent);
}

const char* event_status_name(EventStatus status) {
  switch (status) {
    case EventStatus::kAccepted:
      return "accepted";
    case EventStatus::kDuplicate:
      return "duplicate";
    case EventStatus::kRejected:
      return "rejected";
    case EventStatus::kFailed:
      break;
  }
  return "failed";
}

std::string PublishReport::to_json() const {
  // Built by hand (this runs for every request); the keys in the order a
  // nlohmann::json object would print them.
  std::string out;
  if (kind == PublishOutcomeKind::kBodyInvalid || kind == PublishOutcomeKind::kTooManyEvents) {
    out = "{\"error\":";
    pipeline::append_json_string(out, error);
    out += '}';
    return out;
  }
  out.reserve(96 + results.size() * 96);
  out += "{\"accepted\":" + std::to_string(accepted);
  out += ",\"duplicates\":" + std::to_string(duplicates);
  if (kind == PublishOutcomeKind::kRetryLater) {
    out +=
        ",\"error\":\"some events were not accepted by the broker; retry them (a retry is safe)\"";
  } else if (kind == PublishOutcomeKind::kAllRejected) {
    out += ",\"error\":\"every event was rejected\"";
  }
  out += ",\"failed\":" + std::to_string(failed);
  out += ",\"received\":" + std::to_string(received);
  out += ",\"rejected\":" + std::to_string(rejected);
  out += ",\"results\":[";
  for (std::size_t i = 0; i < results.size(); ++i) {
    const EventResult& r = results[i];
    out += i == 0 ? "{" : ",{";
    if (!r.error.empty()) {
      out += "\"error\":";
      pipeline::append_json_string(out, r.error);
      out += ',';
    }
    out += "\"event_id\":";
    pipeline::append_json_string(out, r.event_id);
    if (!r.field.empty()) {
      out += ",\"field\":";
      pipeline::append_json_string(out, r.field);
    }
    out += ",\"index\":" + std::to_string(r.index);
    out += ",\"status\":\"";
    out += event_status_name(r.status);
    out += "\",\"topic\":";
    pipeline::append_json_string(out, r.topic);
    out += '}';
  }
  out += "]}";
  return out;
}

// One request on its way: the parsed body, the results so far, and where
// the report goes. Shared by the callbacks of its two publish rounds.
struct PublishCall {
  pipeline::PublishBody parsed;
  PublishReport report;
  std::vector<std::size_t> valid_index;  // result index of each published event
  std::string request_id;
  PublishService::Done done;
};

pipeline::PublishBody PublishService::parse(const PublishInput& input) const {
  namespace ce = pipeline::cloudevents;
  switch (input.format) {
    case BodyFormat::kJson:
      break;
    case BodyFormat::kNdjson:
      return pipeline::parse_ndjson_body(input.body, limits_);
    case BodyFormat::kCloudEvent:
    case BodyFormat::kCloudEventBatch:
      return ce::parse_structured(input.body, input.format == BodyFormat::kCloudEventBatch, limits_,
                                  pipeline::now_utc());
    case BodyFormat::kCloudEventBinary:
      return ce::parse_binary(input.attributes, input.body, limits_, pipeline::now_utc());
  }
  return pipeline::parse_publish_body(input.body, limits_);
}

void PublishService::publish(const PublishInput& input, const std::string& request_id, Done done) {
  publish_body(parse(input), request_id, std::move(done));
}

void PublishService::publish_body(pipeline::PublishBody body, const std::string& request_id,
                                  Done done) {
  auto call = std::make_shared<PublishCall>();
  call->request_id = request_id;
  call->done = std::move(done);
  PublishReport& report = call->report;
  call->parsed = std::move(body);
  if (call->parsed.error) {
    const auto kind = call->parsed.error->kind;
    report.kind = kind == pipeline::BodyErrorKind::kTooManyEvents ||
                          kind == pipeline::BodyErrorKind::kTooLarge
                      ? PublishOutcomeKind::kTooManyEvents
                      : PublishOutcomeKind::kBodyInvalid;
    report.error = call->parsed.error->message;
    call->done(std::move(report));
    return;
  }

  report.received = call->parsed.verdicts.size();
  report.results.resize(call->parsed.verdicts.size());
  std::vector<OutgoingMessage> messages;
  for (std::size_t i = 0; i < call->parsed.verdicts.size(); ++i) {
    const auto& verdict = call->parsed.verdicts[i];
    EventResult& result = report.results[i];
    result.index = verdict.index;
    result.topic = verdict.topic;
    result.event_id = verdict.event_id;
    if (verdict.event) {
      messages.push_back(publisher_.event_message(*verdict.event));
      call->valid_index.push_back(i);
    } else {
      result.status = EventStatus::kRejected;
      result.reason = reason_of(verdict.field);
      result.field = verdict.attribute;
      result.error = verdict.error;
      ++report.rejected;
    }
  }
  if (messages.empty()) {
    finish(call);
    return;
  }
  // The events table past its bound (retention cannot make room): refused
  // now, with Retry-After, rather than stored until the disk is full.
  if (storage_) {
    if (std::string problem = storage_(); !problem.empty()) {
      PublishOutcome full;
      full.kind = PublishError::kStorageFull;
      full.error = std::move(problem);
      on_events_published(call, std::vector<PublishOutcome>(messages.size(), full), false);
      return;
    }
  }
  // Room for the events and for a count marker they may need: when the
  // publisher is at its capacity, the request is refused at once (503 +
  // Retry-After) rather than waited on.
  JetStreamPublisher::Room room{messages.size() + 1, JetStreamPublisher::kMarkerBytes};
  for (const OutgoingMessage& message : messages) room.bytes += message.data.size();
  if (!publisher_.admit(room)) {
    PublishOutcome full;
    full.kind = PublishError::kCapacity;
    full.error =
        "ingest has INGEST_MAX_PENDING_PUBLISHES events (or INGEST_MAX_PENDING_PUBLISH_BYTES) "
        "awaiting PubAcks; retry later";
    on_events_published(call, std::vector<PublishOutcome>(messages.size(), full), false);
    return;
  }
  publisher_.publish(
      std::move(messages), request_id,
      [this, call](const std::vector<PublishOutcome>& outcomes) {
        on_events_published(call, outcomes, true);
      },
      /*admitted=*/true);
}

void PublishService::on_events_published(const std::shared_ptr<PublishCall>& call,
                                         const std::vector<PublishOutcome>& outcomes,
                                         bool marker_admitted) {
  PublishReport& report = call->report;
  std::vector<std::size_t> duplicate_results;
  for (std::size_t k = 0; k < outcomes.size(); ++k) {
    EventResult& result = report.results[call->valid_index[k]];
    const PublishOutcome& outcome = outcomes[k];
    switch (outcome.status) {
      case PublishStatus::kAccepted:
        result.status = EventStatus::kAccepted;
        ++report.accepted;
        break;
      case PublishStatus::kDuplicate:
        result.status = EventStatus::kDuplicate;
        duplicate_results.push_back(call->valid_index[k]);
        break;
      case PublishStatus::kRetryable:
        result.status = EventStatus::kFailed;
        result.error = outcome.error;
        ++report.failed;
        if (metrics_ != nullptr) metrics_->publish_error(outcome.kind).Increment();
        break;
      case PublishStatus::kPermanent:
        result.status = EventStatus::kRejected;
        result.reason = RejectReason::kBroker;
        result.error = "broker: refused the event: " + outcome.error;
        ++report.rejected;
        break;
    }
  }
  if (duplicate_results.empty() || !marker_admitted) {
    if (marker_admitted) publisher_.release({1, JetStreamPublisher::kMarkerBytes});  // no marker
    finish(call);
    return;
  }
  // The broker dropped these, so the processor would never see them: one
  // count marker for the request goes through the stream instead, and the
  // processor counts it in PostgreSQL. Without its PubAck the duplicates
  // are "failed": the client's retry counts them.
  pipeline::fault::crash_point("ingest.after_pubacks_before_marker");
  const std::string& topic = report.results[duplicate_results.front()].topic;
  std::vector<OutgoingMessage> marker;
  marker.push_back(publisher_.marker_message(topic, duplicate_results.size()));
  publisher_.publish(
      std::move(marker), call->request_id,
      [this, call, duplicate_results](std::vector<PublishOutcome> marker_outcomes) {
        on_marker_published(call, duplicate_results, marker_outcomes.front());
      },
      /*admitted=*/true);
}

void PublishService::on_marker_published(const std::shared_ptr<PublishCall>& call,
                                         const std::vector<std::size_t>& duplicate_results,
                                         const PublishOutcome& marker) {
  PublishReport& report = call->report;
  if (marker.status == PublishStatus::kAccepted) {
    report.duplicates = duplicate_results.size();
  } else {
    pipeline::log::warn("duplicate_marker_failed", {{"request_id", call->request_id},
                                                    {"duplicates", duplicate_results.size()},
                                                    {"error", marker.error}});
    if (metrics_ != nullptr) metrics_->publish_error(marker.kind).Increment();
    for (const std::size_t i : duplicate_results) {
      report.results[i].status = EventStatus::kFailed;
      report.results[i].error = "duplicate could not be counted: " + marker.error;
      ++report.failed;
    }
  }
  finish(call);
}

void PublishService::finish(const std::shared_ptr<PublishCall>& call) {
  PublishReport& report = call->report;
  if (metrics_ != nullptr) {
    metrics_->events_received->Increment(static_cast<double>(report.received));
    metrics_->events_accepted->Increment(static_cast<double>(report.accepted));
    metrics_->events_duplicate->Increment(static_cast<double>(report.duplicates));
    metrics_->events_failed->Increment(static_cast<double>(report.failed));
    for (const auto& result : report.results) {
      if (result.status == EventStatus::kRejected) metrics_->rejected(result.reason).Increment();
    }
  }
  if (report.failed > 0) {
    report.kind = PublishOutcomeKind::kRetryLater;
    // A line for a request answered 503 (never one per event), with the
    // request id the client and the processor's logs share; at most one a
    // second, with the count of the others.
    std::uint64_t suppressed = 0;
    if (publish_failed_log.allow(&suppressed)) {
      std::string reason;
      for (const auto& result : report.results) {
        if (result.status == EventStatus::kFailed) {
          reason = result.error;
          break;
        }
      }
      pipeline::log::warn("publish_failed",
                          {{"request_id", call->request_id},
                           {"failed", report.failed},
                           {"received", report.received},
                           {"error", pipeline::log::first_line(reason, 200)},
                           {"other_requests_failed_since_last_line", suppressed}});
    }
  } else if (report.accepted + report.duplicates == 0) {
    report.kind = PublishOutcomeKind::kAllRejected;
  }
  call->done(std::move(report));
}

PublishReport PublishService::publish_and_wait(std::string_view body,
                                               const std::string& request_id) {
  return publish_and_wait(PublishInput{BodyFormat::kJson, body, {}}, request_id);
}

PublishReport PublishService::publish_and_wait(const PublishInput& input,
                                               const std::string& request_id) {
  std::promise<PublishReport> promise;
  auto future = promise.get_future();
  publish(input, request_id,
          [&promise](PublishReport report) { promise.set_value(std::move(report)); });
  return future.get();
}

}  // namespace ingest
