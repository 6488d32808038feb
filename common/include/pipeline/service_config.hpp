#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "pipeline/jetstream.hpp"
#include "pipeline/settings.hpp"

namespace pipeline {

/// Settings both services read: where the broker and the database are, which
/// stream and consumer to use, and how to log.
struct CommonSettings {
  std::string nats_url = "nats://127.0.0.1:4222";
  std::string database_url = "postgresql://postgres@127.0.0.1:55432/events";
  nats::StreamSettings stream;
  /// STREAM_MAX_BYTES as given: "auto", -1 or bytes; resolved into
  /// stream.max_bytes by validate_common_settings.
  std::string stream_max_bytes = "auto";
  nats::ConsumerSettings consumer;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(30)};
  /// DATABASE_STATEMENT_TIMEOUT: the processor's statements (the server
  /// cancels them), and its batches as a whole, client-side, with 2 s more.
  std::chrono::milliseconds statement_timeout{std::chrono::seconds(10)};
  /// NATS_PING_INTERVAL: a broker that answers none of 3 pings in a row is
  /// taken for gone (and reconnected to), so silence is found in about 3
  /// intervals instead of nats.c's default 6 minutes.
  std::chrono::milliseconds nats_ping_interval{std::chrono::seconds(2)};
  /// EVENTS_MAX_BYTES: what the events table may take in PostgreSQL (all
  /// partitions, indexes included). The processor drops the oldest
  /// partitions past it; ingest refuses publishes (503) while the table
  /// passes it by a tenth anyway (the partition being written outgrew it).
  /// 0: no bound.
  std::int64_t events_max_bytes = std::int64_t{50} << 30;
  std::string log_level = "info";
  std::string log_format = "text";
};

/// Binds the common settings to `reader`.
void bind_common_settings(SettingsReader& reader, CommonSettings& settings);

/// Checks relations between settings that no single one can (e.g. the
/// duplicate window must fit in the stream's max age). Throws ConfigError.
/// Resolves what needs it (STREAM_MAX_BYTES). Throws ConfigError.
void validate_common_settings(CommonSettings& settings);

}  // namespace pipeline
