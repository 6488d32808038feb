#include "pipeline/service_config.hpp"

#include <stdexcept>
#include <string>

#include "pipeline/event.hpp"

namespace pipeline {

void bind_common_settings(SettingsReader& reader, CommonSettings& s) {
  using std::chrono::milliseconds;
  reader.text("NATS_URL", &s.nats_url, "NATS server URL(s), comma-separated");
  reader.text("DATABASE_URL", &s.database_url,
              "PostgreSQL connection string (libpq URI or key=value)");
  reader.text("STREAM_NAME", &s.stream.name, "JetStream stream that holds the events");
  reader.text("STREAM_SUBJECT_PREFIX", &s.stream.subject_prefix,
              "events are published on <prefix>.<topic>");
  reader.duration("STREAM_DUPLICATE_WINDOW", &s.stream.duplicate_window, milliseconds(100),
                  "broker de-duplication window (each id in it costs nats-server ~280 bytes)");
  reader.duration("STREAM_MAX_AGE", &s.stream.max_age, milliseconds(0),
                  "how long the stream keeps events for replay (0 = forever)");
  reader.text("STREAM_MAX_BYTES", &s.stream_max_bytes,
              "stream size limit in bytes (-1 = none); auto: 4 GiB, halved until the broker "
              "can reserve it; acked events are purged once half is taken, and when it is "
              "full of unprocessed ones publishes fail with 503");
  reader.integer("STREAM_REPLICAS", &s.stream.replicas, 1, 5,
                 "stream replicas (1 without a cluster)");
  reader.choice<nats::ConfigUpdate>(
      "STREAM_UPDATE", &s.stream.update,
      {{"keep", nats::ConfigUpdate::kKeep}, {"apply", nats::ConfigUpdate::kApply}},
      "when the running stream or consumer differs from these settings: keep it as it runs "
      "(logged), or apply these settings (a smaller STREAM_MAX_BYTES or STREAM_MAX_AGE makes "
      "the broker delete stored events at once)");
  reader.text("CONSUMER_NAME", &s.consumer.durable,
              "durable pull consumer shared by the processors");
  reader.duration("CONSUMER_ACK_WAIT", &s.consumer.ack_wait, milliseconds(1000),
                  "redeliver a message not acked within this time");
  reader.integer("CONSUMER_MAX_ACK_PENDING", &s.consumer.max_ack_pending, 1, 10'000'000,
                 "delivered-but-unacked messages before the broker pauses delivery");
  reader.duration("CONNECT_TIMEOUT", &s.connect_timeout, milliseconds(0),
                  "how long to keep retrying NATS and PostgreSQL at start-up");
  reader.duration("DATABASE_STATEMENT_TIMEOUT", &s.statement_timeout, milliseconds(100),
                  "PostgreSQL cancels a statement of the processor running longer; a batch that "
                  "takes 2 s more than this in all is cut on the client's side (a silent server)");
  reader.duration("NATS_PING_INTERVAL", &s.nats_ping_interval, milliseconds(100),
                  "ping the broker this often; 3 unanswered pings in a row end the connection "
                  "(and a new one is made)");
  reader.integer("EVENTS_MAX_BYTES", &s.events_max_bytes, 0, INT64_MAX,
                 "bytes the events table may take in PostgreSQL, indexes included: the oldest "
                 "partitions are dropped past it, and publishes refused (503) while it is passed "
                 "by a tenth (0 = no bound)");
  reader.text("LOG_LEVEL", &s.log_level, "trace, debug, info, warn, error or off");
  reader.text("LOG_FORMAT", &s.log_format, "text (key=value) or json (one JSON object a line)");
}

void validate_common_settings(CommonSettings& s) {
  if (s.stream_max_bytes == "auto") {
    s.stream.max_bytes = nats::StreamSettings{}.max_bytes;
    s.stream.max_bytes_auto = true;
  } else {
    std::size_t used = 0;
    long long bytes = 0;
    try {
      bytes = std::stoll(s.stream_max_bytes, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != s.stream_max_bytes.size() || s.stream_max_bytes.empty() ||
        (bytes < 1 && bytes != -1)) {
      throw ConfigError("STREAM_MAX_BYTES: must be auto, -1 or a number of bytes, not \"" +
                        s.stream_max_bytes + "\"");
    }
    s.stream.max_bytes = bytes;
    s.stream.max_bytes_auto = false;
  }
  if (!is_valid_topic(s.stream.subject_prefix)) {
    throw ConfigError("STREAM_SUBJECT_PREFIX: must be tokens of [A-Za-z0-9_-] separated by dots");
  }
  if (s.stream.max_age.count() > 0 && s.stream.duplicate_window > s.stream.max_age) {
    throw ConfigError("STREAM_DUPLICATE_WINDOW: must not be longer than STREAM_MAX_AGE");
  }
}

}  // namespace pipeline
