#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>

#include "subscriptions/subscription_hub.hpp"

namespace ingest {

/// The subscription hub's metrics: open streams, events delivered, streams
/// ended by reason, and how long after storage an event was settled and read.
class HubMetrics final : public HubObserver {
 public:
  explicit HubMetrics(prometheus::Registry& registry);

  void subscribers(std::size_t open) override;
  void delivered(std::size_t events) override;
  void settled_after(double seconds) override;
  void ended(StreamEnd reason) override;

 private:
  prometheus::Gauge* open_;
  prometheus::Counter* delivered_;
  prometheus::Histogram* settled_after_;
  std::array<prometheus::Counter*, 4> ended_{};  // by StreamEnd
};

}  // namespace ingest
