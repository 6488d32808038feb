#include "event_rules.hpp"

#include <utf8.h>

#include <algorithm>
#include <vector>

#include "pipeline/timestamp.hpp"

namespace pipeline::rules {
namespace {

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

}  // namespace

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

std::string text_value_rule(std::string_view text, std::size_t max_length) {
  std::size_t length = 0;
  if (!printable_utf8(text, &length)) return "must not contain control characters";
  if (length == 0) return "must not be empty";
  if (length > max_length) {
    return "longer than max_field_length (" + std::to_string(max_length) + " characters)";
  }
  return {};
}

std::string text_rule(const json& object, const char* name, std::size_t max_length,
                      std::string* out) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return "is required";
  if (!it->is_string()) return "must be a string";
  const auto& text = it->get_ref<const std::string&>();
  if (auto rule = text_value_rule(text, max_length); !rule.empty()) return rule;
  *out = text;
  return {};
}

std::string payload_rule(const json& value, std::optional<std::string_view> exact_text,
                         const ValidationLimits& limits, std::string* payload_json) {
  if (!value.is_object()) return "must be a JSON object";
  const Shape shape = shape_of(value, limits.max_json_depth);
  if (shape.depth > limits.max_json_depth) {
    return "nesting deeper than max_json_depth (" + std::to_string(limits.max_json_depth) + ")";
  }
  if (shape.has_nul) return "strings must not contain U+0000";
  // The payload's own text, so that numbers stay exactly as sent (the parsed
  // form holds them as doubles); jsonb keeps them exact.
  *payload_json = exact_text ? std::string(*exact_text) : value.dump();
  if (payload_json->size() > limits.max_payload_bytes) {
    return "larger than max_payload_bytes (" + std::to_string(limits.max_payload_bytes) + " bytes)";
  }
  return {};
}

EventVerdict reject(EventVerdict verdict, EventField field, std::string_view name,
                    const std::string& rule) {
  verdict.field = field;
  verdict.attribute = std::string(name);
  verdict.error = verdict.attribute + ": " + rule;
  return verdict;
}

std::size_t text_depth(std::string_view text, std::size_t limit) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
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

std::optional<BodyError> body_depth_error(std::string_view text, std::size_t max_depth) {
  if (text_depth(text, max_depth) <= max_depth) return std::nullopt;
  return BodyError{BodyErrorKind::kTooDeep,
                   "JSON nesting deeper than max_body_depth (" + std::to_string(max_depth) + ")"};
}

std::optional<json> parse_json_text(std::string_view text, std::size_t max_depth,
                                    BodyError* error) {
  // The JSON parser skips a byte order mark, the layout scan does not: the
  // two must read the same text (the HTTP layer strips one that starts a
  // body; one anywhere else is an error, RFC 8259 §8.1).
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) {
    *error = BodyError{BodyErrorKind::kMalformedJson,
                       "malformed JSON: a byte order mark (U+FEFF) before the JSON text"};
    return std::nullopt;
  }
  if (auto too_deep = body_depth_error(text, max_depth)) {
    *error = std::move(*too_deep);
    return std::nullopt;
  }
  try {
    return json::parse(text);
  } catch (const json::out_of_range& overflow) {
    // A number beyond a double (1e400): PostgreSQL can hold it, so the
    // structure is read with it as 0 and the text keeps it (see BodyLayout).
    const auto readable = without_overflowing_numbers(text);
    try {
      if (!readable) throw overflow;
      return json::parse(*readable);
    } catch (const json::exception& e) {
      *error = BodyError{BodyErrorKind::kMalformedJson, std::string("malformed JSON: ") + e.what()};
    }
  } catch (const json::exception& e) {
    *error = BodyError{BodyErrorKind::kMalformedJson, std::string("malformed JSON: ") + e.what()};
  }
  return std::nullopt;
}

EventVerdict validate_event(std::size_t index, const json& element,
                            const BodyLayout::EventLayout& layout, const ValidationLimits& limits) {
  EventVerdict verdict;
  verdict.index = index;
  const auto refuse = [&](EventField field, const std::string& rule) {
    return reject(std::move(verdict), field, field_name(field), rule);
  };
  if (!element.is_object()) return refuse(EventField::kEvent, "must be a JSON object");
  if (auto it = element.find("topic"); it != element.end() && it->is_string()) {
    verdict.topic = it->get<std::string>();
  }
  if (auto it = element.find("event_id"); it != element.end() && it->is_string()) {
    verdict.event_id = it->get<std::string>();
  }
  if (!layout.problem.empty()) {
    return refuse(layout.problem_in_payload ? EventField::kPayload : EventField::kEvent,
                  layout.problem);
  }
  Event event;
  std::string timestamp_text;
  const std::pair<EventField, std::string> checks[] = {
      {EventField::kTopic, text_rule(element, "topic", limits.max_field_length, &event.topic)},
      {EventField::kEventId,
       text_rule(element, "event_id", limits.max_field_length, &event.event_id)},
      {EventField::kTimestamp, text_rule(element, "timestamp", 64, &timestamp_text)},
      {EventField::kSource, text_rule(element, "source", limits.max_field_length, &event.source)},
  };
  for (const auto& [field, rule] : checks) {
    if (!rule.empty()) return refuse(field, rule);
  }
  if (!is_valid_topic(event.topic, limits.max_field_length)) {
    return refuse(EventField::kTopic, kTopicRule);
  }
  std::string why;
  const auto timestamp = parse_rfc3339(timestamp_text, &why);
  if (!timestamp) return refuse(EventField::kTimestamp, why);
  event.timestamp = format_rfc3339(*timestamp);
  if (const auto it = element.find("payload"); it != element.end()) {
    if (auto rule = payload_rule(*it, layout.payload, limits, &event.payload_json); !rule.empty()) {
      return refuse(EventField::kPayload, rule);
    }
  }
  verdict.event = std::move(event);
  return verdict;
}

}  // namespace pipeline::rules
