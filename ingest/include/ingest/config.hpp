#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/event.hpp"
#include "pipeline/service_config.hpp"

namespace ingest {

/// Everything ingest reads at start-up.
struct IngestConfig {
  pipeline::CommonSettings common;
  std::string http_address = "0.0.0.0";
  std::int64_t http_port = 8080;  ///< 0 picks a free port (tests)
  std::size_t http_threads = 2;   ///< I/O threads: they never wait
  std::size_t query_threads = 8;  ///< threads for /events, /stats, /ready, /metrics
  std::size_t max_body_bytes = std::size_t{1024} * 1024;
  std::size_t max_request_line_bytes = std::size_t{8} * 1024;
  std::size_t max_header_bytes = std::size_t{16} * 1024;
  std::size_t max_connections = 10000;
  std::size_t max_pipelined = 32;
  std::size_t connection_buffer_bytes = std::size_t{1024} * 1024;
  pipeline::ValidationLimits limits;
  std::chrono::milliseconds publish_timeout{5000};
  /// INGEST_MAX_PENDING_PUBLISHES: events awaiting their PubAcks at most;
  /// beyond, a request is answered 503 at once.
  std::size_t max_pending_publishes = 50000;
  /// INGEST_MAX_PENDING_PUBLISH_BYTES: the same, in bytes of event messages.
  std::size_t max_pending_publish_bytes = std::size_t{64} << 20;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{30000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds write_timeout{30000};
  std::size_t db_pool_size = 4;
  /// STATS_MAX_TOPICS: /stats lists the largest topics, this many at most.
  std::size_t stats_max_topics = 100;
  /// INGEST_QUERY_TIMEOUT: a query of /events, /stats or a subscription
  /// (with the wait for a pooled connection) ends within it (and a second).
  std::chrono::milliseconds query_timeout{5000};
  /// Comma-separated bearer tokens; empty = no authentication.
  std::string api_tokens;
  /// Requests per second per token (or client address); 0 = no rate limit.
  double rate_limit_rps = 0;
  std::size_t rate_limit_burst = 100;
  /// Failed authentications per second per client address (then 429).
  double auth_failure_rate = 5;
  std::size_t auth_failure_burst = 20;
  /// GET /subscribe.
  std::chrono::milliseconds subscribe_heartbeat{15000};
  std::chrono::milliseconds subscribe_poll_interval{50};
  std::chrono::milliseconds subscribe_retry{2000};
  std::size_t subscribe_buffer_events = 1000;
  std::size_t subscribe_buffer_bytes = std::size_t{2} << 20;
  std::chrono::milliseconds subscribe_slow_timeout{10000};
  std::size_t subscribe_round_events = 5000;
  std::size_t subscribe_round_bytes = std::size_t{8} << 20;
  std::size_t subscribe_max_clients = 2000;

  /// The shipper protocols (OTLP/HTTP logs, Elasticsearch bulk, Loki push):
  /// where each finds its topic and source.
  std::string otlp_topic_attribute = "service.name";
  std::string bulk_source_fields = "host.name,host";
  std::string loki_topic_labels = "service_name,job,app";
  std::string loki_source_labels = "host,instance";

  /// The tokens of api_tokens, split and trimmed.
  std::vector<std::string> token_list() const;
};

/// Reads the configuration from the environment and `argv`. Returns false when
/// --help was asked for (help printed to stdout). Throws pipeline::ConfigError.
bool load_config(int argc, const char* const* argv, IngestConfig& config);

}  // namespace ingest
