#pragma once

#include <prometheus/registry.h>

#include <array>

#include "pipeline/metrics.hpp"
#include "processor/message.hpp"

namespace processor {

/// Every metric of the processor; outcome and kind labels are fixed sets.
struct ProcessorMetrics {
  ProcessorMetrics();

  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Counter* fetched;
  /// Per StoreOutcome, indexed by its value.
  std::array<prometheus::Counter*, kStoreOutcomes> outcomes{};
  /// Failures retried, per pipeline::db::FailureKind but never_storable.
  prometheus::Counter* retry_unavailable;
  prometheus::Counter* retry_later;
  prometheus::Counter* retry_outcome_unknown;
  prometheus::Counter* retry_fetch;
  /// Batches NAKed because the stream was created again meanwhile.
  prometheus::Counter* retry_incarnation;
  prometheus::Counter* pruned;
  prometheus::Counter* in_progress_acks;
  /// Messages the broker skipped over (delivery_gaps.hpp), by what became of them.
  prometheus::Counter* skipped_recovered;
  prometheus::Counter* skipped_gone;
  prometheus::Histogram* batch_size;
  prometheus::Histogram* transaction_seconds;
  prometheus::Histogram* end_to_end_seconds;
  prometheus::Gauge* consumer_pending;
  prometheus::Gauge* consumer_ack_pending;
  prometheus::Gauge* consumer_max_ack_pending;
  prometheus::Gauge* consumer_redelivered;
  prometheus::Gauge* stream_messages;
  /// The events table (processor/src/retention.cpp).
  prometheus::Gauge* event_partitions;
  prometheus::Gauge* events_bytes;
  prometheus::Gauge* events_max_bytes;
  prometheus::Gauge* key_filter_partitions;
  prometheus::Gauge* key_filter_bytes;
  prometheus::Gauge* retention_pass_seconds;
  prometheus::Counter* partitions_dropped_age;
  prometheus::Counter* partitions_dropped_size;
  prometheus::Counter* retention_failures;
  prometheus::Counter* partitions_packed;
  prometheus::Counter* partitions_pack_failed;
  prometheus::Counter* pack_bytes_saved;
  prometheus::Counter* stream_purges;
  prometheus::Gauge* stream_bytes;
  prometheus::Gauge* stream_max_bytes;
  pipeline::metrics::ServiceGauges up;

 private:
  /// The broker's and the events table's sizes, and retention's work.
  void register_storage();
};

}  // namespace processor
