#pragma once

// Grafana Loki's push API (POST /loki/api/v1/push), JSON and protobuf
// compressed with snappy: each entry becomes one event of the one publish
// path; the answers are Loki's (204, plain-text errors).
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pipeline/event.hpp"

namespace ingest::loki {

/// How entries map onto events (named settings of ingest).
struct Settings {
  /// LOKI_TOPIC_LABELS: the first of these labels present is the topic
  /// (written as a topic: topic_from); "unknown_service" when none is.
  std::vector<std::string> topic_labels = {"service_name", "job", "app"};
  /// LOKI_SOURCE_LABELS: the first present is the source; "loki" when none is.
  std::vector<std::string> source_labels = {"host", "instance"};
};

enum class Encoding { kJson, kProtobufSnappy };

/// One verdict per entry, in request order, or `error` when the body is not
/// a push request (400) or has more entries than max_events_per_request
/// (413). Each entry: topic and source from its stream's labels (Settings);
/// timestamp its nanoseconds; payload {"line", "labels", "structured_metadata"};
/// event_id "loki-" and 32 hex digits of the SHA-256 of the label set, the
/// timestamp and the line: Loki's own notion of the same entry, so that a
/// client's resend is a duplicate.
/// `max_inflated`: the most a snappy body may decompress to
/// (INGEST_MAX_BODY_BYTES; beyond, kTooLarge: 413).
pipeline::PublishBody decode(std::string_view body, Encoding encoding, const Settings& settings,
                             const pipeline::ValidationLimits& limits, std::size_t max_inflated);

/// A label set in Prometheus's text form, `{name="value", ...}` (what a
/// protobuf push's stream carries): the pairs sorted by name, empty values
/// dropped; false and `error` set when it is not one (or names a label twice).
bool parse_labels(std::string_view text, std::vector<std::pair<std::string, std::string>>* labels,
                  std::string* error);

}  // namespace ingest::loki
