#include "metrics.hpp"

#include <array>

#include "api/api.hpp"
#include "ingest/publish_service.hpp"
#include "ingest/publisher.hpp"

namespace ingest {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

std::string name(const char* suffix) { return std::string(pipeline::metrics::kPrefix) + suffix; }

constexpr std::array<RejectReason, 7> kRejectReasons = {
    RejectReason::kTopic,   RejectReason::kEventId, RejectReason::kTimestamp, RejectReason::kSource,
    RejectReason::kPayload, RejectReason::kEvent,   RejectReason::kBroker};
constexpr std::array<PublishError, 7> kPublishErrors = {
    PublishError::kTimeout,   PublishError::kNoResponders, PublishError::kStreamFull,
    PublishError::kNotStored, PublishError::kCapacity,     PublishError::kStorageFull,
    PublishError::kOther};
constexpr std::array<int, 12> kCodes = {200, 204, 400, 401, 404, 405, 408, 413, 415, 429, 500, 503};

}  // namespace

IngestMetrics::IngestMetrics() {
  requests_family = &BuildCounter()
                         .Name(name("http_requests_total"))
                         .Help("HTTP requests answered, by route and status code")
                         .Register(*registry);
  duration_family = &BuildHistogram()
                         .Name(name("http_request_duration_seconds"))
                         .Help("Time from request to response, by route")
                         .Register(*registry);
  body_bytes = &BuildHistogram()
                    .Name(name("http_request_body_bytes"))
                    .Help("Size of POST /publish bodies")
                    .Register(*registry)
                    .Add({}, pipeline::metrics::size_buckets(16.0 * 1024 * 1024));
  in_flight = &BuildGauge()
                   .Name(name("http_requests_in_flight"))
                   .Help("Requests being handled now")
                   .Register(*registry)
                   .Add({});
  events_bytes = &BuildGauge()
                      .Name(name("ingest_events_bytes"))
                      .Help(
                          "Bytes the events table takes in PostgreSQL (-1: unknown); past "
                          "EVENTS_MAX_BYTES by a tenth, publishes are refused")
                      .Register(*registry)
                      .Add({});
  events_max_bytes = &BuildGauge()
                          .Name(name("ingest_events_max_bytes"))
                          .Help("EVENTS_MAX_BYTES (0: no bound)")
                          .Register(*registry)
                          .Add({});
  auto& events = BuildCounter()
                     .Name(name("ingest_events_total"))
                     .Help(
                         "Events by what became of them at ingest: received (valid or not), "
                         "accepted (PubAck), duplicate (broker window), failed (no PubAck)")
                     .Register(*registry);
  events_received = &events.Add({{"outcome", "received"}});
  events_accepted = &events.Add({{"outcome", "accepted"}});
  events_duplicate = &events.Add({{"outcome", "duplicate"}});
  events_failed = &events.Add({{"outcome", "failed"}});
  rejected_family = &BuildCounter()
                         .Name(name("ingest_events_rejected_total"))
                         .Help("Events rejected, by the field or rule that failed")
                         .Register(*registry);
  publish_latency = &BuildHistogram()
                         .Name(name("ingest_publish_duration_seconds"))
                         .Help("Time from JetStream publish to its PubAck, per event")
                         .Register(*registry)
                         .Add({}, pipeline::metrics::latency_buckets());
  publish_errors_family = &BuildCounter()
                               .Name(name("ingest_publish_errors_total"))
                               .Help("Events without a PubAck, by kind")
                               .Register(*registry);
  up = pipeline::metrics::register_service(*registry, "ingest");

  // Every series exists from the start (at 0), so dashboards and alerts see
  // them before the first event of their kind.
  for (const RejectReason reason : kRejectReasons) {
    rejected_[static_cast<std::size_t>(reason)] =
        &rejected_family->Add({{"reason", reject_reason_name(reason)}});
  }
  for (const PublishError error : kPublishErrors) {
    publish_errors_[static_cast<std::size_t>(error)] =
        &publish_errors_family->Add({{"kind", publish_error_name(error)}});
  }
  for (const auto& route : IngestApi::routes()) {
    request_duration(route.path);
    for (const int code : kCodes) {
      requests_[{std::string(route.path), code}] =
          &requests_family->Add({{"route", route.path}, {"code", std::to_string(code)}});
    }
  }
  request_duration("other");
}

prometheus::Histogram& IngestMetrics::request_duration(const std::string& route) {
  auto it = durations_.find(route);
  if (it != durations_.end()) return *it->second;
  if (!durations_.empty() && durations_.count("other") != 0) return *durations_.at("other");
  auto& histogram = duration_family->Add({{"route", route}}, pipeline::metrics::latency_buckets());
  durations_[route] = &histogram;
  return histogram;
}

prometheus::Counter& IngestMetrics::requests(const std::string& route, int code) {
  if (const auto it = requests_.find({route, code}); it != requests_.end()) return *it->second;
  const std::string label = durations_.count(route) != 0 ? route : "other";
  return requests_family->Add({{"route", label}, {"code", std::to_string(code)}});
}

prometheus::Counter& IngestMetrics::rejected(RejectReason reason) const {
  return *rejected_[static_cast<std::size_t>(reason)];
}

prometheus::Counter& IngestMetrics::publish_error(PublishError error) const {
  prometheus::Counter* counter = publish_errors_[static_cast<std::size_t>(error)];
  return counter != nullptr ? *counter
                            : *publish_errors_[static_cast<std::size_t>(PublishError::kOther)];
}

}  // namespace ingest
