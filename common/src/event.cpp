#include "pipeline/event.hpp"

#include <nlohmann/json.hpp>

#include "event_rules.hpp"
#include "json_layout.hpp"
#include "pipeline/json_text.hpp"
#include "pipeline/timestamp.hpp"

namespace pipeline {
namespace {

using nlohmann::json;

bool is_topic_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

}  // namespace

const char* field_name(EventField field) {
  switch (field) {
    case EventField::kTopic:
      return "topic";
    case EventField::kEventId:
      return "event_id";
    case EventField::kTimestamp:
      return "timestamp";
    case EventField::kSource:
      return "source";
    case EventField::kPayload:
      return "payload";
    case EventField::kEvent:
      break;
  }
  return "event";
}

bool is_valid_topic(std::string_view topic, std::size_t max_length) {
  if (topic.empty() || topic.size() > max_length) return false;
  if (topic.front() == '.' || topic.back() == '.') return false;
  char previous = '\0';
  for (const char c : topic) {
    if (!is_topic_char(c)) return false;
    if (c == '.' && previous == '.') return false;
    previous = c;
  }
  return true;
}

bool is_valid_text(std::string_view text, std::size_t max_length) {
  return rules::text_value_rule(text, max_length).empty();
}

PublishBody parse_publish_body(std::string_view body, const ValidationLimits& limits) {
  PublishBody result;
  BodyError error;
  auto parsed = rules::parse_json_text(body, limits.max_body_depth, &error);
  if (!parsed) {
    result.error = std::move(error);
    return result;
  }
  json document = std::move(*parsed);
  const BodyLayout layout = scan_body_layout(body);

  const json* events = nullptr;
  json single = json::array();
  if (document.is_array()) {
    events = &document;
  } else if (document.is_object() && document.contains("events")) {
    const json& inner = document["events"];
    if (!inner.is_array()) {
      result.error = BodyError{BodyErrorKind::kWrongShape, "\"events\" must be a JSON array"};
      return result;
    }
    if (!layout.envelope_problem.empty()) {
      result.error = BodyError{BodyErrorKind::kWrongShape, layout.envelope_problem};
      return result;
    }
    events = &inner;
  } else if (document.is_object()) {
    single.push_back(std::move(document));
    events = &single;
  } else {
    result.error = BodyError{BodyErrorKind::kWrongShape,
                             "body must be an event object, an array of events, or "
                             "{\"events\": [...]}"};
    return result;
  }
  if (events->empty()) {
    result.error = BodyError{BodyErrorKind::kWrongShape, "no events in the request"};
    return result;
  }
  if (events->size() > limits.max_events_per_request) {
    result.error = BodyError{BodyErrorKind::kTooManyEvents,
                             "more events than max_events_per_request (" +
                                 std::to_string(limits.max_events_per_request) + ")"};
    return result;
  }
  result.verdicts.reserve(events->size());
  static const BodyLayout::EventLayout kNoLayout;
  for (std::size_t i = 0; i < events->size(); ++i) {
    const BodyLayout::EventLayout* event_layout = &kNoLayout;
    if (events == &single) {
      event_layout = &layout.root_event;
    } else if (const auto it = layout.events.find(i); it != layout.events.end()) {
      event_layout = &it->second;
    }
    result.verdicts.push_back(rules::validate_event(i, (*events)[i], *event_layout, limits));
  }
  return result;
}

std::string encode_event(const Event& event) {
  std::string out;
  out.reserve(96 + event.topic.size() + event.event_id.size() + event.source.size() +
              event.payload_json.size());
  out += "{\"topic\":";
  append_json_string(out, event.topic);
  out += ",\"event_id\":";
  append_json_string(out, event.event_id);
  out += ",\"timestamp\":";
  append_json_string(out, event.timestamp);
  out += ",\"source\":";
  append_json_string(out, event.source);
  out += ",\"payload\":";
  out += event.payload_json;
  out += '}';
  return out;
}

std::optional<Event> decode_event(std::string_view data, std::string* why) {
  // Generous limits: whatever ingest accepted under its own settings must pass.
  ValidationLimits limits;
  limits.max_field_length = std::size_t{64} * 1024;
  limits.max_payload_bytes = std::size_t{1} << 30;
  limits.max_json_depth = 1024;
  limits.max_body_depth = 1024 + 3;
  const PublishBody body = parse_publish_body(data, limits);
  if (body.error) {
    *why = body.error->message;
    return std::nullopt;
  }
  if (body.verdicts.size() != 1) {
    *why = "expected exactly one event in the message";
    return std::nullopt;
  }
  if (!body.verdicts.front().event) {
    *why = body.verdicts.front().error;
    return std::nullopt;
  }
  return body.verdicts.front().event;
}

}  // namespace pipeline
