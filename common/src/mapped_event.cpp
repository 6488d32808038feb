// The events of other protocols (OTLP, Elasticsearch bulk, Loki push), once
// their decoders mapped them, judged by the rules of a native event.
#include "event_rules.hpp"
#include "json_layout.hpp"
#include "pipeline/event.hpp"
#include "pipeline/timestamp.hpp"

namespace pipeline {
namespace {

// The years a timestamp may have (as parse_rfc3339 takes them).
constexpr std::int64_t kMinMicros = -62135596800LL * 1'000'000;  // 0001-01-01T00:00:00Z
constexpr std::int64_t kMaxMicros = 253402300799LL * 1'000'000;  // 9999-12-31T23:59:59Z

bool topic_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// True when the JSON text holds an escaped U+0000 (which jsonb cannot store).
bool has_nul_escape(std::string_view text) {
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] != '\\') continue;
    if (text[i + 1] == 'u' && text.substr(i + 2, 4) == "0000") return true;
    ++i;  // whatever it escapes
  }
  return text.find('\0') != std::string_view::npos;
}

}  // namespace

std::string json_object_rule(std::string_view text, const ValidationLimits& limits) {
  const std::size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos || text[start] != '{') return "must be a JSON object";
  if (text.size() > limits.max_payload_bytes) {
    return "larger than max_payload_bytes (" + std::to_string(limits.max_payload_bytes) + " bytes)";
  }
  if (rules::text_depth(text, limits.max_json_depth) > limits.max_json_depth) {
    return "nesting deeper than max_json_depth (" + std::to_string(limits.max_json_depth) + ")";
  }
  if (has_nul_escape(text)) return "strings must not contain U+0000";
  return value_problem(text);
}

std::optional<BodyError> body_depth_error(std::string_view text, std::size_t max_depth) {
  return rules::body_depth_error(text, max_depth);
}

std::string topic_from(std::string_view name) {
  std::string topic;
  topic.reserve(name.size());
  for (const char c : name) topic += topic_char(c) ? c : '_';
  // No empty dot-separated part: a leading, trailing or doubled dot gets a '_'.
  std::string out;
  out.reserve(topic.size() + 2);
  for (std::size_t i = 0; i < topic.size(); ++i) {
    const bool part_starts = i == 0 || topic[i - 1] == '.';
    if (topic[i] == '.' && part_starts) out += '_';
    out += topic[i];
  }
  if (!out.empty() && out.back() == '.') out += '_';
  return out;
}

EventVerdict judge_event(std::size_t index, MappedEvent mapped, const ValidationLimits& limits) {
  EventVerdict verdict;
  verdict.index = index;
  verdict.topic = mapped.topic;
  verdict.event_id = mapped.event_id;
  const auto refuse = [&](EventField field, const std::string& name, const std::string& rule) {
    return rules::reject(std::move(verdict), field, name, rule);
  };
  if (auto rule = rules::text_value_rule(mapped.topic, limits.max_field_length); !rule.empty()) {
    return refuse(EventField::kTopic, mapped.names.topic, rule);
  }
  if (!is_valid_topic(mapped.topic, limits.max_field_length)) {
    return refuse(EventField::kTopic, mapped.names.topic, rules::kTopicRule);
  }
  if (auto rule = rules::text_value_rule(mapped.event_id, limits.max_field_length); !rule.empty()) {
    return refuse(EventField::kEventId, mapped.names.event_id, rule);
  }
  if (auto rule = rules::text_value_rule(mapped.source, limits.max_field_length); !rule.empty()) {
    return refuse(EventField::kSource, mapped.names.source, rule);
  }
  if (mapped.timestamp_micros < kMinMicros || mapped.timestamp_micros > kMaxMicros) {
    return refuse(EventField::kTimestamp, mapped.names.timestamp, "outside the years 0001 to 9999");
  }
  const std::string_view payload = mapped.payload_json;
  if (payload.empty() || payload.front() != '{') {
    return refuse(EventField::kPayload, mapped.names.payload, "must be a JSON object");
  }
  if (payload.size() > limits.max_payload_bytes) {
    return refuse(
        EventField::kPayload, mapped.names.payload,
        "larger than max_payload_bytes (" + std::to_string(limits.max_payload_bytes) + " bytes)");
  }
  if (rules::text_depth(payload, limits.max_json_depth) > limits.max_json_depth) {
    return refuse(
        EventField::kPayload, mapped.names.payload,
        "nesting deeper than max_json_depth (" + std::to_string(limits.max_json_depth) + ")");
  }
  if (has_nul_escape(payload)) {
    return refuse(EventField::kPayload, mapped.names.payload, "strings must not contain U+0000");
  }
  Event event;
  event.topic = std::move(mapped.topic);
  event.event_id = std::move(mapped.event_id);
  event.source = std::move(mapped.source);
  event.timestamp = format_rfc3339(UtcTimestamp{mapped.timestamp_micros});
  event.payload_json = std::move(mapped.payload_json);
  verdict.event = std::move(event);
  return verdict;
}

}  // namespace pipeline
