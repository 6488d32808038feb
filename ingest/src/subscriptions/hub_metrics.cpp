#include "subscriptions/hub_metrics.hpp"

#include <string>

#include "pipeline/metrics.hpp"

namespace ingest {
namespace {

std::string name(const char* suffix) { return std::string(pipeline::metrics::kPrefix) + suffix; }

}  // namespace

HubMetrics::HubMetrics(prometheus::Registry& registry) {
  open_ = &prometheus::BuildGauge()
               .Name(name("subscribe_streams_open"))
               .Help("GET /subscribe streams open now")
               .Register(registry)
               .Add({});
  delivered_ = &prometheus::BuildCounter()
                    .Name(name("subscribe_events_delivered_total"))
                    .Help("Events written to subscribers (one per subscriber that got it)")
                    .Register(registry)
                    .Add({});
  settled_after_ = &prometheus::BuildHistogram()
                        .Name(name("subscribe_settled_after_seconds"))
                        .Help("Time from an event's storage to the hub reading it as settled")
                        .Register(registry)
                        .Add({}, pipeline::metrics::latency_buckets());
  auto& ended = prometheus::BuildCounter()
                    .Name(name("subscribe_streams_ended_total"))
                    .Help("GET /subscribe streams ended, by reason")
                    .Register(registry);
  for (const StreamEnd reason : kStreamEnds) {
    ended_[static_cast<std::size_t>(reason)] = &ended.Add({{"reason", stream_end_name(reason)}});
  }
}

void HubMetrics::subscribers(std::size_t open) { open_->Set(static_cast<double>(open)); }

void HubMetrics::delivered(std::size_t events) {
  delivered_->Increment(static_cast<double>(events));
}

void HubMetrics::settled_after(double seconds) { settled_after_->Observe(seconds); }

void HubMetrics::ended(StreamEnd reason) { ended_[static_cast<std::size_t>(reason)]->Increment(); }

}  // namespace ingest
