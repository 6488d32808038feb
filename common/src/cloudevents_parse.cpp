// CloudEvents on POST /publish: the structured mode (one event, or a batch)
// and the binary mode (attributes in headers), judged by the same rules as
// native events, each error naming the CloudEvents attribute.
#include "event_rules.hpp"
#include "json_layout.hpp"
#include "pipeline/cloudevents.hpp"

namespace pipeline::cloudevents {
namespace {

using rules::json;

// One context attribute as found: absent, or present with its value (a
// string, or for the JSON format possibly another type).
struct Found {
  bool present = false;
  bool is_string = false;
  std::string text;
};

// The attributes the mapping reads, from either mode.
struct Context {
  Found specversion, id, source, type, time, datacontenttype;
  bool has_data_base64 = false;
};

Found member(const json& object, const char* name) {
  Found found;
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return found;  // null: unset (JSON format §2.3)
  found.present = true;
  found.is_string = it->is_string();
  if (found.is_string) found.text = it->get<std::string>();
  return found;
}

Context context_of(const json& object) {
  Context context;
  context.specversion = member(object, "specversion");
  context.id = member(object, "id");
  context.source = member(object, "source");
  context.type = member(object, "type");
  context.time = member(object, "time");
  context.datacontenttype = member(object, "datacontenttype");
  context.has_data_base64 = member(object, "data_base64").present;
  return context;
}

// The rule a required text attribute breaks, or "".
std::string required_text(const Found& found, std::size_t max_length) {
  if (!found.present) return "is required";
  if (!found.is_string) return "must be a string";
  return rules::text_value_rule(found.text, max_length);
}

// Judges the context attributes: a verdict that is either rejected or holds
// an event without its payload yet.
EventVerdict judge(std::size_t index, const Context& ce, const ValidationLimits& limits,
                   UtcTimestamp received) {
  EventVerdict verdict;
  verdict.index = index;
  if (ce.type.is_string) verdict.topic = ce.type.text;
  if (ce.id.is_string) verdict.event_id = ce.id.text;
  const std::string key = ce.id.is_string && ce.source.is_string
                              ? event_key(ce.source.text, ce.id.text, limits.max_field_length)
                              : std::string();
  if (!key.empty()) verdict.event_id = key;
  const auto refuse = [&](EventField field, const char* name, const std::string& rule) {
    return rules::reject(std::move(verdict), field, name, rule);
  };
  if (!ce.specversion.present) return refuse(EventField::kEvent, "specversion", "is required");
  if (ce.specversion.text != "1.0") {
    return refuse(EventField::kEvent, "specversion", "must be \"1.0\" (CloudEvents 1.0)");
  }
  const std::pair<std::pair<EventField, const char*>, std::string> checks[] = {
      {{EventField::kEventId, "id"}, required_text(ce.id, limits.max_field_length)},
      {{EventField::kSource, "source"}, required_text(ce.source, limits.max_field_length)},
      {{EventField::kTopic, "type"}, required_text(ce.type, limits.max_field_length)},
  };
  for (const auto& [where, rule] : checks) {
    if (!rule.empty()) return refuse(where.first, where.second, rule);
  }
  if (!is_valid_topic(ce.type.text, limits.max_field_length)) {
    return refuse(EventField::kTopic, "type",
                  std::string(rules::kTopicRule) + " (it is the topic)");
  }
  if (key.empty()) {
    return refuse(EventField::kEventId, "id",
                  "source and id together are too long for an event key (max_field_length " +
                      std::to_string(limits.max_field_length) + ")");
  }
  Event event;
  event.topic = ce.type.text;
  event.event_id = key;
  event.source = ce.source.text;
  event.timestamp = format_rfc3339(received);
  if (ce.time.present) {
    std::string why = "must be a string";
    const auto time = ce.time.is_string ? parse_rfc3339(ce.time.text, &why) : std::nullopt;
    if (!time) return refuse(EventField::kTimestamp, "time", why);
    event.timestamp = format_rfc3339(*time);
  }
  if (ce.datacontenttype.present &&
      (!ce.datacontenttype.is_string || !is_json_media_type(ce.datacontenttype.text))) {
    return refuse(EventField::kPayload, "datacontenttype",
                  "only JSON data is taken (application/json or a +json type)");
  }
  if (ce.has_data_base64) {
    return refuse(EventField::kPayload, "data_base64",
                  "binary data is not taken; send JSON data as data");
  }
  verdict.event = std::move(event);
  return verdict;
}

// The payload from `data` (absent or null: {}), or the verdict rejected.
EventVerdict with_data(EventVerdict verdict, const json* data,
                       std::optional<std::string_view> exact_text, const ValidationLimits& limits) {
  if (!verdict.event || data == nullptr || data->is_null()) return verdict;
  std::string payload;
  if (auto rule = rules::payload_rule(*data, exact_text, limits, &payload); !rule.empty()) {
    if (rule == "must be a JSON object") rule += " (it is the payload)";
    verdict.event.reset();
    return rules::reject(std::move(verdict), EventField::kPayload, "data", rule);
  }
  verdict.event->payload_json = std::move(payload);
  return verdict;
}

EventVerdict structured_event(std::size_t index, const json& element,
                              const BodyLayout::EventLayout& layout, const ValidationLimits& limits,
                              UtcTimestamp received) {
  if (!element.is_object()) {
    EventVerdict verdict;
    verdict.index = index;
    return rules::reject(std::move(verdict), EventField::kEvent, "event", "must be a JSON object");
  }
  EventVerdict verdict = judge(index, context_of(element), limits, received);
  if (verdict.event && !layout.problem.empty()) {
    verdict.event.reset();
    return layout.problem_in_payload
               ? rules::reject(std::move(verdict), EventField::kPayload, "data", layout.problem)
               : rules::reject(std::move(verdict), EventField::kEvent, "event", layout.problem);
  }
  const auto data = element.find("data");
  return with_data(std::move(verdict), data == element.end() ? nullptr : &*data, layout.payload,
                   limits);
}

PublishBody body_error(BodyErrorKind kind, std::string message) {
  PublishBody result;
  result.error = BodyError{kind, std::move(message)};
  return result;
}

}  // namespace

PublishBody parse_structured(std::string_view body, bool batch, const ValidationLimits& limits,
                             UtcTimestamp received) {
  BodyError error;
  const auto document = rules::parse_json_text(body, limits.max_body_depth, &error);
  if (!document) return body_error(error.kind, error.message);
  if (!batch && !document->is_object()) {
    return body_error(BodyErrorKind::kWrongShape,
                      "a structured CloudEvent is one JSON object (send several as "
                      "application/cloudevents-batch+json)");
  }
  if (batch && !document->is_array()) {
    return body_error(BodyErrorKind::kWrongShape, "a CloudEvents batch is a JSON array");
  }
  if (batch && document->empty()) {
    return body_error(BodyErrorKind::kWrongShape, "no events in the request");
  }
  if (batch && document->size() > limits.max_events_per_request) {
    return body_error(BodyErrorKind::kTooManyEvents,
                      "more events than max_events_per_request (" +
                          std::to_string(limits.max_events_per_request) + ")");
  }
  const BodyLayout layout = scan_body_layout(body, "data");
  PublishBody result;
  if (!batch) {
    result.verdicts.push_back(structured_event(0, *document, layout.root_event, limits, received));
    return result;
  }
  static const BodyLayout::EventLayout kNoLayout;
  result.verdicts.reserve(document->size());
  for (std::size_t i = 0; i < document->size(); ++i) {
    const auto it = layout.events.find(i);
    result.verdicts.push_back(structured_event(
        i, (*document)[i], it == layout.events.end() ? kNoLayout : it->second, limits, received));
  }
  return result;
}

PublishBody parse_binary(const std::vector<std::pair<std::string, std::string>>& attributes,
                         std::string_view data, const ValidationLimits& limits,
                         UtcTimestamp received) {
  Context ce;
  std::string repeated;
  for (const auto& [name, value] : attributes) {
    Found* slot = name == "specversion"       ? &ce.specversion
                  : name == "id"              ? &ce.id
                  : name == "source"          ? &ce.source
                  : name == "type"            ? &ce.type
                  : name == "time"            ? &ce.time
                  : name == "datacontenttype" ? &ce.datacontenttype
                                              : nullptr;
    if (slot == nullptr) continue;  // subject, dataschema, extensions: not stored
    if (slot->present && repeated.empty()) repeated = name;
    *slot = Found{true, true, value};
  }
  PublishBody result;
  EventVerdict verdict = judge(0, ce, limits, received);
  if (!repeated.empty() && verdict.event) {
    verdict.event.reset();
    verdict = rules::reject(std::move(verdict), EventField::kEvent, repeated,
                            "given more than once (header ce-" + repeated + ")");
  }
  const auto first = data.find_first_not_of(" \t\r\n");
  if (!verdict.event || first == std::string_view::npos) {
    result.verdicts.push_back(std::move(verdict));
    return result;
  }
  const std::string_view text = data.substr(first, data.find_last_not_of(" \t\r\n") - first + 1);
  BodyError error;
  const auto document = rules::parse_json_text(text, limits.max_body_depth, &error);
  std::string problem = document ? value_problem(text) : error.message;
  if (!problem.empty()) {
    verdict.event.reset();
    verdict = rules::reject(std::move(verdict), EventField::kPayload, "data", problem);
  } else {
    verdict = with_data(std::move(verdict), &*document, text, limits);
  }
  result.verdicts.push_back(std::move(verdict));
  return result;
}

}  // namespace pipeline::cloudevents
