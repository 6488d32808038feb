#include "ingest/publish_service.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "ingest/publisher.hpp"
#include "metrics.hpp"

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

std::string PublishReport::to_json() const {
  nlohmann::json out;
  if (kind == PublishOutcomeKind::kBodyInvalid || kind == PublishOutcomeKind::kTooManyEvents) {
    out["error"] = error;
    return out.dump();
  }
  out["received"] = received;
  out["accepted"] = accepted;
  out["duplicates"] = duplicates;
  out["rejected"] = rejected;
  out["failed"] = failed;
  auto& list = out["results"] = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json item{
        {"index", r.index}, {"topic", r.topic}, {"event_id", r.event_id}, {"status", r.status}};
    if (!r.error.empty()) item["error"] = r.error;
    list.push_back(std::move(item));
  }
  if (kind == PublishOutcomeKind::kRetryLater) {
    out["error"] = "some events were not accepted by the broker; retry them (a retry is safe)";
  } else if (kind == PublishOutcomeKind::kAllRejected) {
    out["error"] = "every event was rejected";
  }
  // Invalid UTF-8 cannot reach here (the parser rejects it); replace to be safe.
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

PublishReport PublishService::publish(std::string_view body, const std::string& request_id) {
  PublishReport report;
  pipeline::PublishBody parsed = pipeline::parse_publish_body(body, limits_);
  if (parsed.error) {
    report.kind = parsed.error->kind == pipeline::BodyErrorKind::kTooManyEvents
                      ? PublishOutcomeKind::kTooManyEvents
                      : PublishOutcomeKind::kBodyInvalid;
    report.error = parsed.error->message;
    return report;
  }

  report.received = parsed.verdicts.size();
  report.results.resize(parsed.verdicts.size());
  std::vector<const pipeline::Event*> valid;
  std::vector<std::size_t> valid_index;
  for (std::size_t i = 0; i < parsed.verdicts.size(); ++i) {
    const auto& verdict = parsed.verdicts[i];
    EventResult& result = report.results[i];
    result.index = verdict.index;
    result.topic = verdict.topic;
    result.event_id = verdict.event_id;
    if (verdict.event) {
      valid.push_back(&*verdict.event);
      valid_index.push_back(i);
    } else {
      result.status = "rejected";
      result.error = verdict.error;
      ++report.rejected;
    }
  }

  const std::vector<PublishOutcome> outcomes =
      valid.empty() ? std::vector<PublishOutcome>{} : publisher_.publish(valid, request_id);
  std::vector<std::size_t> duplicate_results;
  for (std::size_t k = 0; k < outcomes.size(); ++k) {
    EventResult& result = report.results[valid_index[k]];
    switch (outcomes[k].status) {
      case PublishStatus::kAccepted:
        result.status = "accepted";
        ++report.accepted;
        break;
      case PublishStatus::kDuplicate:
        result.status = "duplicate";
        duplicate_results.push_back(valid_index[k]);
        break;
      case PublishStatus::kRetryable:
        result.status = "failed";
        result.error = outcomes[k].error;
        ++report.failed;
        break;
      case PublishStatus::kPermanent:
        result.status = "rejected";
        result.error = "broker: refused the event: " + outcomes[k].error;
        ++report.rejected;
        break;
    }
  }
  if (!duplicate_results.empty()) {
    // The broker dropped these, so the processor would never see them: one
    // count marker for the request goes through the stream instead, and the
    // processor counts it in PostgreSQL. Without its PubAck the duplicates
    // are "failed": the client's retry counts them.
    const PublishOutcome marker = publisher_.publish_duplicate_marker(
        report.results[duplicate_results.front()].topic, duplicate_results.size(), request_id);
    if (marker.status == PublishStatus::kAccepted) {
      report.duplicates = duplicate_results.size();
    } else {
      spdlog::warn("event=duplicate_marker_failed request_id={} duplicates={} error=\"{}\"",
                   request_id, duplicate_results.size(), marker.error);
      if (metrics_ != nullptr) metrics_->publish_error(marker.error_kind).Increment();
      for (const std::size_t i : duplicate_results) {
        report.results[i].status = "failed";
        report.results[i].error = "duplicate could not be counted: " + marker.error;
        ++report.failed;
      }
    }
  }

  if (metrics_ != nullptr) {
    metrics_->events_received->Increment(static_cast<double>(report.received));
    metrics_->events_accepted->Increment(static_cast<double>(report.accepted));
    metrics_->events_duplicate->Increment(static_cast<double>(report.duplicates));
    metrics_->events_failed->Increment(static_cast<double>(report.failed));
    for (const auto& result : report.results) {
      if (result.status == "rejected") metrics_->rejected(result.error).Increment();
    }
    for (const auto& outcome : outcomes) {
      if (outcome.status == PublishStatus::kRetryable) {
        metrics_->publish_error(outcome.error_kind).Increment();
      }
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
        if (result.status == "failed") {
          reason = result.error;
          break;
        }
      }
      spdlog::warn(
          "event=publish_failed request_id={} failed={} received={} error=\"{}\" "
          "other_requests_failed_since_last_line={}",
          request_id, report.failed, report.received, reason.substr(0, 200), suppressed);
    }
  } else if (report.accepted + report.duplicates == 0) {
    report.kind = PublishOutcomeKind::kAllRejected;
  }
  return report;
}

}  // namespace ingest
