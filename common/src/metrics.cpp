#include "pipeline/metrics.hpp"

#include <prometheus/text_serializer.h>

#include <cstdint>
#include <sstream>

namespace pipeline::metrics {

prometheus::Histogram::BucketBoundaries latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

prometheus::Histogram::BucketBoundaries size_buckets(double largest) {
  prometheus::Histogram::BucketBoundaries bounds;
  for (std::uint64_t b = 1; static_cast<double>(b) <= largest; b *= 4) {
    bounds.push_back(static_cast<double>(b));
  }
  return bounds;
}

ServiceGauges register_service(prometheus::Registry& registry, const std::string& service) {
  prometheus::BuildGauge()
      .Name(std::string(kPrefix) + "build_info")
      .Help("Build of the running service (always 1)")
      .Register(registry)
      .Add({{"service", service}, {"version", PIPELINE_VERSION}})
      .Set(1);
  auto& nats = prometheus::BuildGauge()
                   .Name(std::string(kPrefix) + "nats_up")
                   .Help("1 when the service's NATS connection is up")
                   .Register(registry)
                   .Add({{"service", service}});
  auto& postgres = prometheus::BuildGauge()
                       .Name(std::string(kPrefix) + "postgres_up")
                       .Help("1 when the service reached PostgreSQL at its last try")
                       .Register(registry)
                       .Add({{"service", service}});
  return {&nats, &postgres};
}

std::string serialize(prometheus::Registry& registry) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return out.str();
}

}  // namespace pipeline::metrics
