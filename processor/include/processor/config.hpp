#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "pipeline/service_config.hpp"

namespace processor {

/// The events table's partitions by arrival (processor/partitions.hpp).
struct PartitionSettings {
  /// Each partition's span of arrival time; bounds are multiples of it since
  /// the epoch (UTC).
  std::chrono::milliseconds interval{std::chrono::hours(24)};
  /// A partition is dropped once its end is this long ago (0: never by age).
  std::chrono::milliseconds retention{std::chrono::hours(24 * 30)};
  /// The oldest partitions are dropped while all of them take more (0: no
  /// bound). The partition being written is never dropped.
  std::uint64_t max_bytes = 0;
  /// A partition's key filter is built this long after its end at the
  /// earliest (and once no transaction from before its end is open):
  /// longer than a batch's transaction lasts.
  std::chrono::milliseconds seal_margin{std::chrono::minutes(2)};
  /// Memory for the key filters of sealed partitions (processor/src/
  /// key_filters.hpp), about 1.5 bytes per event; partitions past it are
  /// looked up without one, and a partition whose filter alone would take
  /// more gets none.
  std::size_t key_filter_max_bytes = std::size_t{256} << 20;
  /// Sealed partitions up to this size are packed (processor/src/
  /// packing.hpp), one per pass; larger ones are left as they are, so that
  /// a rebuild at a slow 20 MiB/s (3.4 minutes) ends within the pack's
  /// 5-minute statement timeout (0: none).
  std::size_t pack_max_bytes = std::size_t{4} << 30;
  /// Partitions are made this many intervals ahead of now.
  int ahead = 3;
};

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
  /// EVENTS_PARTITION_INTERVAL, EVENTS_RETENTION (and EVENTS_MAX_BYTES from
  /// the common settings): the events table's partitions and their drop.
  PartitionSettings partitions;
  /// How often partitions are made ahead and dropped past retention.
  std::chrono::milliseconds retention_check_interval{60000};
  /// host:port of the Prometheus endpoint (GET /metrics); "off" disables it.
  std::string metrics_address = "0.0.0.0:9101";
};

/// Reads the configuration from the environment and `argv`. Returns false when
/// --help was asked for (help printed to stdout). Throws pipeline::ConfigError.
bool load_config(int argc, const char* const* argv, ProcessorConfig& config);

}  // namespace processor
