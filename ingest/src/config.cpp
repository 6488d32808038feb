#include "ingest/config.hpp"

#include <algorithm>
#include <iostream>

namespace ingest {
namespace {

// The listener, its threads and the limits of the HTTP layer.
void bind_http_settings(pipeline::SettingsReader& reader, IngestConfig& config) {
  reader.text("INGEST_HTTP_ADDRESS", &config.http_address, "address to listen on");
  reader.integer("INGEST_HTTP_PORT", &config.http_port, 0, 65535, "HTTP port (0 = any free port)");
  reader.size("INGEST_HTTP_THREADS", &config.http_threads, 1, 64,
              "I/O threads that read requests and write responses (they never wait)");
  reader.size("INGEST_QUERY_THREADS", &config.query_threads, 1, 256,
              "threads for the endpoints that wait on PostgreSQL or the broker (/events, /stats, "
              "/ready, /metrics)");
  reader.size("INGEST_MAX_BODY_BYTES", &config.max_body_bytes, 1024, 256u << 20,
              "largest request body (413 beyond)");
  reader.size("INGEST_MAX_REQUEST_LINE_BYTES", &config.max_request_line_bytes, 256, 1u << 20,
              "longest request line (method, target, version; 414 beyond)");
  reader.size("INGEST_MAX_HEADER_BYTES", &config.max_header_bytes, 1024, 1u << 20,
              "largest header section after the request line (431 beyond)");
  reader.size("INGEST_MAX_CONNECTIONS", &config.max_connections, 1, 1'000'000,
              "open connections at most; one more is answered 503 and closed");
  reader.size("INGEST_MAX_PIPELINED_REQUESTS", &config.max_pipelined, 1, 1024,
              "requests of one connection handled at once (more wait, in order)");
  reader.size("INGEST_CONNECTION_BUFFER_BYTES", &config.connection_buffer_bytes, 4096, 1u << 30,
              "high-water mark of one connection: while its requests in flight and unsent "
              "answers hold more, it is not read (resumed below half)");
}

// What one request and one event may hold.
void bind_event_limits(pipeline::SettingsReader& reader, IngestConfig& config) {
  reader.size("INGEST_MAX_EVENTS_PER_REQUEST", &config.limits.max_events_per_request, 1, 100'000,
              "most events in one request (413 beyond)");
  reader.size("INGEST_MAX_PAYLOAD_BYTES", &config.limits.max_payload_bytes, 2, 64u << 20,
              "largest serialised payload of one event");
  reader.size("INGEST_MAX_JSON_DEPTH", &config.limits.max_json_depth, 1, 512,
              "deepest nesting inside a payload");
  reader.size("INGEST_MAX_BODY_DEPTH", &config.limits.max_body_depth, 4, 4096,
              "deepest nesting of a whole request body, checked before parsing (400 beyond); "
              "at least INGEST_MAX_JSON_DEPTH + 3");
  reader.size("INGEST_MAX_FIELD_LENGTH", &config.limits.max_field_length, 1, 4096,
              "longest topic, event_id or source, in characters");
}

// How long ingest waits for the broker and for clients.
void bind_timeouts(pipeline::SettingsReader& reader, IngestConfig& config) {
  using std::chrono::milliseconds;
  reader.duration("INGEST_PUBLISH_TIMEOUT", &config.publish_timeout, milliseconds(10),
                  "how long to wait for JetStream PubAcks before answering 503");
  reader.size("INGEST_MAX_PENDING_PUBLISHES", &config.max_pending_publishes, 16, 10'000'000,
              "events awaiting their PubAcks at most; a request that would pass it is answered "
              "503 with Retry-After at once");
  reader.size("INGEST_MAX_PENDING_PUBLISH_BYTES", &config.max_pending_publish_bytes, 65536,
              std::size_t{1} << 34,
              "bytes of events awaiting their PubAcks at most (as INGEST_MAX_PENDING_PUBLISHES)");
  reader.duration("INGEST_HEADER_TIMEOUT", &config.header_timeout, milliseconds(100),
                  "time a client has to send the request headers");
  reader.duration("INGEST_BODY_TIMEOUT", &config.body_timeout, milliseconds(100),
                  "time a client has to send the request body");
  reader.duration("INGEST_IDLE_TIMEOUT", &config.idle_timeout, milliseconds(100),
                  "a kept-alive connection with no request for this long is closed");
  reader.duration("INGEST_WRITE_TIMEOUT", &config.write_timeout, milliseconds(100),
                  "a client whose unsent answers make no progress for this long is cut off");
}

// The database pool, tokens and rate limits.
void bind_access_settings(pipeline::SettingsReader& reader, IngestConfig& config) {
  reader.size("INGEST_DB_POOL_SIZE", &config.db_pool_size, 1, 256,
              "PostgreSQL connections for /events and /stats");
  reader.size("STATS_MAX_TOPICS", &config.stats_max_topics, 1, 100'000,
              "GET /stats lists this many topics at most, the largest first (topics_total "
              "counts them all)");
  reader.duration("INGEST_QUERY_TIMEOUT", &config.query_timeout, std::chrono::milliseconds(100),
                  "a query of /events, /stats or a subscription, with the wait for a "
                  "connection, ends (503) within this and a second; PostgreSQL cancels it");
  reader.secret("INGEST_API_TOKENS", &config.api_tokens,
                "comma-separated bearer tokens; when set, every endpoint but /health, /ready "
                "and /metrics needs 'Authorization: Bearer <token>'");
  reader.number("INGEST_RATE_LIMIT", &config.rate_limit_rps, 0, 1e9,
                "requests per second allowed per token (or per client address without tokens); "
                "0 = off");
  reader.size("INGEST_RATE_LIMIT_BURST", &config.rate_limit_burst, 1, 1'000'000,
              "requests a client may send at once above the rate");
  reader.number("INGEST_AUTH_FAILURE_RATE", &config.auth_failure_rate, 0, 1e6,
                "failed authentications per second allowed per client address (429 beyond); "
                "0 = off");
  reader.size("INGEST_AUTH_FAILURE_BURST", &config.auth_failure_burst, 1, 1'000'000,
              "failed authentications a client address may make at once");
}

// GET /subscribe.
void bind_subscribe_settings(pipeline::SettingsReader& reader, IngestConfig& config) {
  using std::chrono::milliseconds;
  reader.duration("SUBSCRIBE_HEARTBEAT", &config.subscribe_heartbeat, milliseconds(100),
                  "GET /subscribe sends a comment line after this long without an event, so "
                  "proxies keep the connection");
  reader.duration("SUBSCRIBE_POLL_INTERVAL", &config.subscribe_poll_interval, milliseconds(5),
                  "how often the subscription hub asks how far events are settled");
  reader.duration("SUBSCRIBE_RETRY", &config.subscribe_retry, milliseconds(100),
                  "the retry: an SSE client waits this long before it reconnects");
  reader.size("SUBSCRIBE_BUFFER_EVENTS", &config.subscribe_buffer_events, 10, 10'000'000,
              "events a subscriber may leave unread; beyond it (or SUBSCRIBE_BUFFER_BYTES) it is "
              "sent nothing more until it reads");
  reader.size("SUBSCRIBE_BUFFER_BYTES", &config.subscribe_buffer_bytes, 4096, 1u << 30,
              "bytes a subscriber may leave unread (see SUBSCRIBE_BUFFER_EVENTS)");
  reader.duration("SUBSCRIBE_SLOW_TIMEOUT", &config.subscribe_slow_timeout, milliseconds(100),
                  "a subscriber beyond its buffer for this long without a break is cut (reason "
                  "slow); its client resumes from its last id");
  reader.size("SUBSCRIBE_ROUND_EVENTS", &config.subscribe_round_events, 1, 10'000'000,
              "events the subscription hub reads from PostgreSQL in one round at most");
  reader.size("SUBSCRIBE_ROUND_BYTES", &config.subscribe_round_bytes, 4096, 1u << 30,
              "bytes of events the subscription hub reads in one round at most");
  reader.size("SUBSCRIBE_MAX_CLIENTS", &config.subscribe_max_clients, 0, 1'000'000,
              "open GET /subscribe streams at most (503 beyond)");
}

// The shipper protocols.
void bind_protocol_settings(pipeline::SettingsReader& reader, IngestConfig& config) {
  reader.text("OTLP_TOPIC_ATTRIBUTE", &config.otlp_topic_attribute,
              "POST /v1/logs: the resource attribute whose value is an OTLP log record's topic");
  reader.text("BULK_SOURCE_FIELDS", &config.bulk_source_fields,
              "POST /_bulk: the document fields (comma-separated, dotted names as paths too) "
              "whose first string is the source");
  reader.text("LOKI_TOPIC_LABELS", &config.loki_topic_labels,
              "POST /loki/api/v1/push: the labels (comma-separated) whose first present value "
              "is the topic");
  reader.text("LOKI_SOURCE_LABELS", &config.loki_source_labels,
              "POST /loki/api/v1/push: the labels whose first present value is the source");
}

}  // namespace

bool load_config(int argc, const char* const* argv, IngestConfig& config) {
  pipeline::SettingsReader reader("ingest",
                                  "HTTP API that validates events and publishes them to JetStream");
  pipeline::bind_common_settings(reader, config.common);
  bind_http_settings(reader, config);
  bind_event_limits(reader, config);
  bind_timeouts(reader, config);
  bind_access_settings(reader, config);
  bind_subscribe_settings(reader, config);
  bind_protocol_settings(reader, config);
  if (!reader.read(argc, argv)) {
    std::cout << reader.help();
    return false;
  }
  pipeline::validate_common_settings(config.common);
  if (config.limits.max_body_depth < config.limits.max_json_depth + 3) {
    throw pipeline::ConfigError(
        "INGEST_MAX_BODY_DEPTH must be at least INGEST_MAX_JSON_DEPTH + 3 (the envelope, the "
        "event and the payload take three levels), so that a too-deep payload is rejected alone");
  }
  return true;
}

std::vector<std::string> IngestConfig::token_list() const {
  return pipeline::split_list(api_tokens);
}

}  // namespace ingest
