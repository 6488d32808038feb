#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "pipeline/service_config.hpp"

namespace processor {

/// Everything the processor reads at start-up.
struct ProcessorConfig {
  pipeline::CommonSettings common;
  std::size_t batch_size = 256;  ///< messages per Fetch and per transaction
  std::size_t workers = 2;       ///< fetch/insert threads in this process
  std::chrono::milliseconds fetch_wait{500};
  /// NAK delay after a failure that passes, doubling with each redelivery
  /// of the message up to max_retry_delay.
  std::chrono::milliseconds retry_delay{1000};
  std::chrono::milliseconds max_retry_delay{30000};
  /// How often duplicates and markers the stream no longer holds are pruned.
  std::chrono::milliseconds prune_interval{60000};
  /// host:port of the Prometheus endpoint (GET /metrics); "off" disables it.
  std::string metrics_address = "0.0.0.0:9101";
};

/// Reads the configuration from the environment and `argv`. Returns false when
/// --help was asked for (help printed to stdout). Throws pipeline::ConfigError.
bool load_config(int argc, const char* const* argv, ProcessorConfig& config);

}  // namespace processor
