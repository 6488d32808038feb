#include "processor/config.hpp"

#include <iostream>

namespace processor {

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
  reader.text("PROCESSOR_METRICS_ADDRESS", &config.metrics_address,
              "host:port for GET /metrics (Prometheus); off to disable; port 0 picks one");
  if (!reader.read(argc, argv)) {
    std::cout << reader.help();
    return false;
  }
  pipeline::validate_common_settings(config.common);
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
