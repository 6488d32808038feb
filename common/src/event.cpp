#include "pipeline/event.hpp"

#include <utf8.h>
#include <nlohmann/json.hpp>

#include "json_layout.hpp"
#include "pipeline/json_text.hpp"
#include "pipeline/timestamp.hpp"

namespace pipeline {
namespace {

using nlohmann::json;

// Counts the code points of well-formed UTF-8 (utfcpp checks it: no stray
// continuation bytes, overlong forms, surrogates, or anything above
// U+10FFFF) and checks that none is a control character (C0, DEL, C1).
bool printable_utf8(std::string_view text, std::size_t* code_points) {
  if (!utf8::is_valid(text.begin(), text.end())) return false;
  std::size_t count = 0;
  for (auto it = text.begin(); it != text.end(); ++count) {
    const std::uint32_t code = utf8::unchecked::next(it);
    if (code < 0x20 || (code >= 0x7F && code <= 0x9F)) return false;
  }
  *code_points = count;
  return true;
}

bool is_topic_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// Depth of nesting (an empty object or array counts 1) and whether any string
// or key holds U+0000, which PostgreSQL's jsonb cannot store.
struct Shape {
  std::size_t depth = 0;
  bool has_nul = false;
};

Shape shape_of(const json& value, std::size_t limit) {
  Shape shape;
  struct Frame {
    const json* value;
    std::size_t depth;
  };
  std::vector<Frame> stack{{&value, 1}};
  while (!stack.empty()) {
    const Frame frame = stack.back();
    stack.pop_back();
    const json& v = *frame.value;
    if (v.is_string()) {
      if (v.get_ref<const std::string&>().find('\0') != std::string::npos) shape.has_nul = true;
      continue;
    }
    if (!v.is_structured()) continue;
    shape.depth = std::max(shape.depth, frame.depth);
    if (shape.depth > limit) return shape;
    if (v.is_object()) {
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (it.key().find('\0') != std::string::npos) shape.has_nul = true;
        stack.push_back({&it.value(), frame.depth + 1});
      }
    } else {
      for (const auto& element : v) stack.push_back({&element, frame.depth + 1});
    }
  }
  return shape;
}

// The rule a required short text field breaks, or "" (and `out` set).
std::string text_rule(const json& event, const char* name, std::size_t max_length,
                      std::string* out) {
  const auto it = event.find(name);
  if (it == event.end() || it->is_null()) return "is required";
  if (!it->is_string()) return "must be a string";
  const auto& text = it->get_ref<const std::string&>();
  std::size_t length = 0;
  if (!printable_utf8(text, &length)) return "must not contain control characters";
  if (length == 0) return "must not be empty";
  if (length > max_length) {
    return "longer than max_field_length (" + std::to_string(max_length) + " characters)";
  }
  *out = text;
  return {};
}

EventVerdict reject(EventVerdict verdict, EventField field, const std::string& rule) {
  verdict.field = field;
  verdict.error = std::string(field_name(field)) + ": " + rule;
  return verdict;
}

// The rule the payload breaks, or "" (and the event's payload set).
std::string payload_rule(const json& element, const BodyLayout::EventLayout& layout,
                         const ValidationLimits& limits, Event* event) {
  const auto it = element.find("payload");
  if (it == element.end()) return {};
  if (!it->is_object()) return "must be a JSON object";
  const Shape shape = shape_of(*it, limits.max_json_depth);
  if (shape.depth > limits.max_json_depth) {
    return "nesting deeper than max_json_depth (" + std::to_string(limits.max_json_depth) + ")";
  }
  if (shape.has_nul) return "strings must not contain U+0000";
  // The payload's own text, so that numbers stay exactly as sent (the parsed
  // form holds them as doubles); jsonb keeps them exact.
  event->payload_json = layout.payload ? std::string(*layout.payload) : it->dump();
  if (event->payload_json.size() > limits.max_payload_bytes) {
    return "larger than max_payload_bytes (" + std::to_string(limits.max_payload_bytes) + " bytes)";
  }
  return {};
}

EventVerdict validate_event(std::size_t index, const json& element,
                            const BodyLayout::EventLayout& layout, const ValidationLimits& limits) {
  EventVerdict verdict;
  verdict.index = index;
  if (!element.is_object())
    return reject(std::move(verdict), EventField::kEvent, "must be a JSON object");
  if (auto it = element.find("topic"); it != element.end() && it->is_string()) {
    verdict.topic = it->get<std::string>();
  }
  if (auto it = element.find("event_id"); it != element.end() && it->is_string()) {
    verdict.event_id = it->get<std::string>();
  }
  if (!layout.problem.empty()) {
    return reject(std::move(verdict),
                  layout.problem_in_payload ? EventField::kPayload : EventField::kEvent,
                  layout.problem);
  }
  Event event;
  std::string timestamp_text;
  const std::pair<EventField, std::string> rules[] = {
      {EventField::kTopic, text_rule(element, "topic", limits.max_field_length, &event.topic)},
      {EventField::kEventId,
       text_rule(element, "event_id", limits.max_field_length, &event.event_id)},
      {EventField::kTimestamp, text_rule(element, "timestamp", 64, &timestamp_text)},
      {EventField::kSource, text_rule(element, "source", limits.max_field_length, &event.source)},
  };
  for (const auto& [field, rule] : rules) {
    if (!rule.empty()) return reject(std::move(verdict), field, rule);
  }
  if (!is_valid_topic(event.topic, limits.max_field_length)) {
    return reject(std::move(verdict), EventField::kTopic,
                  "must be characters of [A-Za-z0-9._-] with no empty dot-separated part");
  }
  std::string why;
  const auto timestamp = parse_rfc3339(timestamp_text, &why);
  if (!timestamp) return reject(std::move(verdict), EventField::kTimestamp, why);
  event.timestamp = format_rfc3339(*timestamp);
  if (auto rule = payload_rule(element, layout, limits, &event); !rule.empty()) {
    return reject(std::move(verdict), EventField::kPayload, rule);
  }
  verdict.event = std::move(event);
  return verdict;
}

// Nesting depth of a JSON text, measured without building it, so a hostile
// body cannot make the parser build a huge tree. Stops early past `limit`.
std::size_t text_depth(std::string_view body, std::size_t limit) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return deepest;
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
  std::size_t length = 0;
  return printable_utf8(text, &length) && length > 0 && length <= max_length;
}

PublishBody parse_publish_body(std::string_view body, const ValidationLimits& limits) {
  PublishBody result;
  if (text_depth(body, limits.max_body_depth) > limits.max_body_depth) {
    result.error =
        BodyError{BodyErrorKind::kTooDeep, "JSON nesting deeper than max_body_depth (" +
                                               std::to_string(limits.max_body_depth) + ")"};
    return result;
  }
  json document;
  try {
    document = json::parse(body);
  } catch (const json::out_of_range& overflow) {
    // A number beyond a double (1e400): PostgreSQL can hold it, so the
    // structure is read with it as 0 and the text keeps it (see BodyLayout).
    const auto readable = without_overflowing_numbers(body);
    try {
      if (!readable) throw overflow;
      document = json::parse(*readable);
    } catch (const json::exception& e) {
      result.error =
          BodyError{BodyErrorKind::kMalformedJson, std::string("malformed JSON: ") + e.what()};
      return result;
    }
  } catch (const json::exception& e) {
    result.error =
        BodyError{BodyErrorKind::kMalformedJson, std::string("malformed JSON: ") + e.what()};
    return result;
  }
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
    result.verdicts.push_back(validate_event(i, (*events)[i], *event_layout, limits));
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
