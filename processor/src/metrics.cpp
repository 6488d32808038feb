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
  auto& events = BuildCounter()
                     .Name(name("processor_events_total"))
                     .Help(
                         "Messages by outcome: stored (new key), duplicate (key already stored), "
                         "redelivered (this message was handled before), dead_lettered, "
                         "duplicate_marker (ingest's count of a duplicate the broker dropped)")
                     .Register(*registry);
  stored = &events.Add({{"outcome", "stored"}});
  duplicates = &events.Add({{"outcome", "duplicate"}});
  redelivered = &events.Add({{"outcome", "redelivered"}});
  dead_lettered = &events.Add({{"outcome", "dead_lettered"}});
  duplicate_markers = &events.Add({{"outcome", "duplicate_marker"}});
  auto& transient = BuildCounter()
                        .Name(name("processor_transient_errors_total"))
                        .Help("Failures a retry fixes (batch NAKed and retried), by kind")
                        .Register(*registry);
  transient_database = &transient.Add({{"kind", "database"}});
  transient_fetch = &transient.Add({{"kind", "fetch"}});
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
