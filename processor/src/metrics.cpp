#include "metrics.hpp"

namespace processor {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

std::string name(const char* suffix) { return std::string(pipeline::metrics::kPrefix) + suffix; }

}  // namespace

ProcessorMetrics::ProcessorMetrics() {
  fetched = &BuildCounter()
                 .Name(name("processor_messages_fetched_total"))
                 .Help("Messages fetched from the consumer (redeliveries included)")
                 .Register(*registry)
                 .Add({});
  auto& events =
      BuildCounter()
          .Name(name("processor_events_total"))
          .Help(
              "Messages by outcome: stored (new key), replaced (the first write of a key, "
              "stored in place of a later copy that got there first), duplicate (key already "
              "stored), redelivered (this message was handled before), dead_lettered, "
              "duplicate_marker (ingest's count of duplicates the broker dropped)")
          .Register(*registry);
  for (std::size_t i = 0; i < kStoreOutcomes; ++i) {
    outcomes[i] = &events.Add({{"outcome", outcome_name(static_cast<StoreOutcome>(i))}});
  }
  auto& transient = BuildCounter()
                        .Name(name("processor_transient_errors_total"))
                        .Help(
                            "Failures a retry fixes (messages NAKed and delivered again), by "
                            "kind: database_unavailable, retry_later (disk full, lock, "
                            "cancelled, a trigger's error...), outcome_unknown (connection lost "
                            "during COMMIT), fetch, stream_recreated")
                        .Register(*registry);
  retry_unavailable = &transient.Add({{"kind", "database_unavailable"}});
  retry_later = &transient.Add({{"kind", "retry_later"}});
  retry_outcome_unknown = &transient.Add({{"kind", "outcome_unknown"}});
  retry_fetch = &transient.Add({{"kind", "fetch"}});
  retry_incarnation = &transient.Add({{"kind", "stream_recreated"}});
  pruned = &BuildCounter()
                .Name(name("processor_pruned_rows_total"))
                .Help("Duplicate and marker records forgotten: the stream no longer holds them")
                .Register(*registry)
                .Add({});
  in_progress_acks = &BuildCounter()
                          .Name(name("processor_in_progress_acks_total"))
                          .Help("In-progress acks sent for slow batches")
                          .Register(*registry)
                          .Add({});
  batch_size = &BuildHistogram()
                    .Name(name("processor_batch_size"))
                    .Help("Messages per fetched batch")
                    .Register(*registry)
                    .Add({}, pipeline::metrics::size_buckets(16384));
  transaction_seconds = &BuildHistogram()
                             .Name(name("processor_transaction_duration_seconds"))
                             .Help("Time to write and commit one batch")
                             .Register(*registry)
                             .Add({}, pipeline::metrics::latency_buckets());
  end_to_end_seconds = &BuildHistogram()
                            .Name(name("processor_end_to_end_seconds"))
                            .Help("From ingest's publish to the batch's COMMIT, per stored event")
                            .Register(*registry)
                            .Add({}, pipeline::metrics::latency_buckets());
  const auto gauge = [&](const char* metric, const char* help) {
    return &BuildGauge().Name(name(metric)).Help(help).Register(*registry).Add({});
  };
  consumer_pending =
      gauge("consumer_pending_messages", "Messages not yet delivered to a processor");
  consumer_ack_pending =
      gauge("consumer_ack_pending_messages", "Messages delivered and not yet acked");
  consumer_max_ack_pending =
      gauge("consumer_max_ack_pending", "The consumer's MaxAckPending (delivery pauses there)");
  consumer_redelivered = gauge("consumer_redelivered_messages", "Messages redelivered, now");
  stream_messages = gauge("stream_messages", "Messages in the stream");
  stream_bytes = gauge("stream_bytes", "Bytes in the stream");
  up = pipeline::metrics::register_service(*registry, "processor");
}

}  // namespace processor
