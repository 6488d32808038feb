#include "processor/config.hpp"

#include <iostream>

namespace processor {

namespace {

void validate_partition_settings(const ProcessorConfig& config) {
  const auto& p = config.partitions;
  if (p.interval.count() % 1000 != 0) {
    throw pipeline::ConfigError("EVENTS_PARTITION_INTERVAL: must be whole seconds");
  }
  // Each partition costs relations, locks of every query and planning time.
  if (p.retention.count() > 0 && p.retention / p.interval > 1000) {
    throw pipeline::ConfigError(
        "EVENTS_RETENTION: at most 1000 partitions (EVENTS_RETENTION / "
        "EVENTS_PARTITION_INTERVAL); make EVENTS_PARTITION_INTERVAL longer");
  }
  // The partitions ahead must not run out between two checks.
  if (config.retention_check_interval * 2 > p.interval * p.ahead) {
    throw pipeline::ConfigError(
        "EVENTS_RETENTION_CHECK_INTERVAL: must be at most " + std::to_string(p.ahead) +
        " x EVENTS_PARTITION_INTERVAL / 2, so that partitions are made in time");
  }
}

}  // namespace

bool load_config(int argc, const char* const* argv, ProcessorConfig& config) {
  using std::chrono::milliseconds;
  pipeline::SettingsReader reader(
      "processor", "stores events from the JetStream consumer in PostgreSQL, exactly once");
  pipeline::bind_common_settings(reader, config.common);
  reader.size("PROCESSOR_BATCH_SIZE", &config.batch_size, 1, 10'000,
              "messages fetched and written per transaction");
  reader.size("PROCESSOR_WORKERS", &config.workers, 1, 64, "fetch/insert threads");
  reader.duration("PROCESSOR_FETCH_WAIT", &config.fetch_wait, milliseconds(10),
                  "how long one Fetch waits for messages");
  reader.duration("PROCESSOR_RETRY_DELAY", &config.retry_delay, milliseconds(0),
                  "redelivery delay after a failure that passes (database unavailable, disk "
                  "full, lock, unknown commit outcome), doubling with each redelivery");
  reader.duration("PROCESSOR_MAX_RETRY_DELAY", &config.max_retry_delay, milliseconds(0),
                  "longest redelivery delay");
  reader.duration("PROCESSOR_PRUNE_INTERVAL", &config.prune_interval, milliseconds(100),
                  "how often duplicates and count markers the stream no longer holds are "
                  "forgotten");
  reader.duration("EVENTS_PARTITION_INTERVAL", &config.partitions.interval, milliseconds(1000),
                  "span of arrival time of each partition of the events table (whole seconds); "
                  "retention drops whole partitions");
  reader.duration("EVENTS_RETENTION", &config.partitions.retention, milliseconds(0),
                  "events are dropped, a partition at a time, once they arrived this long ago "
                  "(0 = never by age)");
  reader.duration("EVENTS_RETENTION_CHECK_INTERVAL", &config.retention_check_interval,
                  milliseconds(100),
                  "how often partitions are made ahead and dropped past EVENTS_RETENTION or "
                  "EVENTS_MAX_BYTES");
  reader.size("PROCESSOR_KEY_FILTER_MAX_BYTES", &config.partitions.key_filter_max_bytes, 0,
              std::size_t{1} << 40,
              "memory for the key filters of sealed partitions (about 1.5 bytes per event); "
              "partitions past it are looked up in full (0 = no filters)");
  reader.size("EVENTS_PACK_MAX_BYTES", &config.partitions.pack_max_bytes, 0, std::size_t{1} << 50,
              "sealed partitions up to this size get their indexes rebuilt full (REINDEX "
              "CONCURRENTLY, about 15% less disk); larger ones are left as they are, so that a "
              "rebuild ends within its 5-minute statement timeout (0 = none)");
  reader.text("PROCESSOR_METRICS_ADDRESS", &config.metrics_address,
              "host:port for GET /metrics (Prometheus); off to disable; port 0 picks one");
  if (!reader.read(argc, argv)) {
    std::cout << reader.help();
    return false;
  }
  pipeline::validate_common_settings(config.common);
  config.partitions.max_bytes = static_cast<std::uint64_t>(config.common.events_max_bytes);
  validate_partition_settings(config);
  if (config.max_retry_delay < config.retry_delay) {
    throw pipeline::ConfigError(
        "PROCESSOR_MAX_RETRY_DELAY: must not be shorter than PROCESSOR_RETRY_DELAY");
  }
  const auto in_flight = static_cast<std::int64_t>(config.batch_size * config.workers);
  if (config.common.consumer.max_ack_pending < in_flight) {
    throw pipeline::ConfigError(
        "CONSUMER_MAX_ACK_PENDING: must be at least PROCESSOR_WORKERS x PROCESSOR_BATCH_SIZE (" +
        std::to_string(in_flight) + ")");
  }
  return true;
}

}  // namespace processor
