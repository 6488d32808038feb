#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <vector>

namespace pipeline::metrics {

/// Every metric name starts with this.
inline constexpr const char* kPrefix = "pipeline_";

/// Latency buckets in seconds, 0.5 ms to 10 s.
prometheus::Histogram::BucketBoundaries latency_buckets();
/// Size buckets (events per batch, bytes per body): powers of 4 from 1.
prometheus::Histogram::BucketBoundaries size_buckets(double largest);

/// Registers pipeline_build_info{service, version} = 1 and the up gauges
/// pipeline_nats_up / pipeline_postgres_up{service}. Returns the up gauges.
struct ServiceGauges {
  prometheus::Gauge* nats_up;
  prometheus::Gauge* postgres_up;
};
ServiceGauges register_service(prometheus::Registry& registry, const std::string& service);

/// The registry in Prometheus's text format.
std::string serialize(prometheus::Registry& registry);

}  // namespace pipeline::metrics
