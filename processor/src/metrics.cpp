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
  auto& skipped = BuildCounter()
                      .Name(name("processor_skipped_messages_total"))
                      .Help(
                          "Messages the broker skipped over (never delivered): recovered from "
                          "the stream by sequence and stored, or gone from it")
                      .Register(*registry);
  skipped_recovered = &skipped.Add({{"outcome", "recovered"}});
  skipped_gone = &skipped.Add({{"outcome", "gone"}});
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
  register_storage();
  up = pipeline::metrics::register_service(*registry, "processor");
}

void ProcessorMetrics::register_storage() {
  const auto gauge = [&](const char* metric, const char* help) {
    return &BuildGauge().Name(name(metric)).Help(help).Register(*registry).Add({});
  };
  stream_messages = gauge("stream_messages", "Messages in the stream");
  stream_bytes = gauge("stream_bytes", "Bytes in the stream");
  stream_max_bytes = gauge("stream_max_bytes", "The running stream's MaxBytes (-1: none)");
  event_partitions = gauge("processor_event_partitions",
                           "Partitions of the events table (those made ahead included)");
  events_bytes = gauge("processor_events_bytes",
                       "Bytes the events table takes in PostgreSQL, indexes and TOAST included");
  events_max_bytes = gauge("processor_events_max_bytes", "EVENTS_MAX_BYTES (0: no bound by size)");
  key_filter_partitions =
      gauge("processor_key_filter_partitions",
            "Sealed partitions whose key filter this processor holds (their keys are looked up "
            "only where a filter may hold them)");
  key_filter_bytes = gauge("processor_key_filter_bytes",
                           "Memory of the key filters held (PROCESSOR_KEY_FILTER_MAX_BYTES)");
  retention_pass_seconds =
      gauge("processor_retention_pass_seconds", "How long the last retention pass took");
  auto& dropped = BuildCounter()
                      .Name(name("processor_partitions_dropped_total"))
                      .Help(
                          "Partitions of events dropped, by reason: age (EVENTS_RETENTION), "
                          "size (EVENTS_MAX_BYTES)")
                      .Register(*registry);
  partitions_dropped_age = &dropped.Add({{"reason", "age"}});
  partitions_dropped_size = &dropped.Add({{"reason", "size"}});
  auto& packed = BuildCounter()
                     .Name(name("processor_partitions_packed_total"))
                     .Help(
                         "Rebuilds of sealed partitions' indexes, by result: packed, failed (a "
                         "partition is tried three times at most; the log says why)")
                     .Register(*registry);
  partitions_packed = &packed.Add({{"result", "packed"}});
  partitions_pack_failed = &packed.Add({{"result", "failed"}});
  pack_bytes_saved = &BuildCounter()
                          .Name(name("processor_pack_saved_bytes_total"))
                          .Help("Bytes of the events table given back by packing sealed partitions")
                          .Register(*registry)
                          .Add({});
  stream_purges = &BuildCounter()
                       .Name(name("processor_stream_purges_total"))
                       .Help(
                           "Purges of the stream's acked messages (it held more than half of "
                           "its max bytes)")
                       .Register(*registry)
                       .Add({});
  retention_failures = &BuildCounter()
                            .Name(name("processor_retention_failures_total"))
                            .Help("Retention passes that failed (the next one takes over)")
                            .Register(*registry)
                            .Add({});
}

}  // namespace processor
