#pragma once

#include <prometheus/registry.h>

#include "pipeline/metrics.hpp"

namespace processor {

/// Every metric of the processor; outcome and kind labels are fixed sets.
struct ProcessorMetrics {
  ProcessorMetrics();

  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Counter* fetched;
  prometheus::Counter* stored;
  prometheus::Counter* duplicates;
  prometheus::Counter* redelivered;
  prometheus::Counter* dead_lettered;
  prometheus::Counter* duplicate_markers;
  prometheus::Counter* transient_database;
  prometheus::Counter* transient_fetch;
  prometheus::Counter* in_progress_acks;
  prometheus::Histogram* batch_size;
  prometheus::Histogram* transaction_seconds;
  prometheus::Histogram* end_to_end_seconds;
  prometheus::Gauge* consumer_pending;
  prometheus::Gauge* consumer_ack_pending;
  prometheus::Gauge* consumer_max_ack_pending;
  prometheus::Gauge* consumer_redelivered;
  prometheus::Gauge* stream_messages;
  prometheus::Gauge* stream_bytes;
  pipeline::metrics::ServiceGauges up;
};

}  // namespace processor
