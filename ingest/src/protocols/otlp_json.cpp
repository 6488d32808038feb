// OTLP logs in JSON (OTLP's JSON encoding of the protobuf messages): read by
// hand, so that the rules are OTLP's and not a generic mapping's: keys in
// lowerCamelCase (snake_case taken too), 64-bit integers as decimal strings
// or numbers, traceId and spanId in hex, other bytes in base64, enums as
// integers, unknown fields ignored.
#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>

#include "pipeline/json_text.hpp"
#include "protocols/otlp_record.hpp"

namespace ingest::otlp {
namespace {

using nlohmann::json;

struct Malformed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The member `camel` (or its snake_case spelling) of `object`, or null.
const json* member(const json& object, const char* camel, const char* snake = nullptr) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(camel);
  if (it == object.end() && snake != nullptr) it = object.find(snake);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

std::string text_of(const json* value, const char* what) {
  if (value == nullptr) return {};
  if (!value->is_string()) throw Malformed(std::string(what) + " must be a string");
  return value->get<std::string>();
}

// A 64-bit integer: a decimal string or a JSON number.
template <typename Int>
Int integer_of(const json* value, const char* what) {
  if (value == nullptr) return 0;
  if (value->is_number_integer()) {
    if (std::is_unsigned_v<Int> && value->is_number_unsigned()) return value->get<Int>();
    if (std::is_unsigned_v<Int> && value->get<std::int64_t>() < 0) {
      throw Malformed(std::string(what) + " must not be negative");
    }
    return value->get<Int>();
  }
  if (value->is_string()) {
    const auto& text = value->get_ref<const std::string&>();
    Int result = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), result);
    if (error == std::errc() && end == text.data() + text.size() && !text.empty()) return result;
  }
  throw Malformed(std::string(what) + " must be an integer (a decimal string or a number)");
}

double double_of(const json& value) {
  if (value.is_number()) return value.get<double>();
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    if (text == "NaN") return std::nan("");
    if (text == "Infinity") return HUGE_VAL;
    if (text == "-Infinity") return -HUGE_VAL;
    try {
      std::size_t used = 0;
      const double result = std::stod(text, &used);
      if (used == text.size()) return result;
    } catch (const std::exception&) {
    }
  }
  throw Malformed("doubleValue must be a number");
}

void append_any(std::string& out, const json& value);

void append_pairs(std::string& out, const json* list) {
  std::vector<std::pair<std::string, std::string>> pairs;
  if (list != nullptr) {
    if (!list->is_array()) throw Malformed("attributes must be an array of key-value pairs");
    for (const json& kv : *list) {
      std::string value;
      const json* v = member(kv, "value");
      if (v != nullptr) {
        append_any(value, *v);
      } else {
        value = "null";
      }
      pairs.emplace_back(text_of(member(kv, "key"), "key"), std::move(value));
    }
  }
  append_object(out, pairs);
}

void append_any(std::string& out, const json& value) {
  if (!value.is_object()) throw Malformed("an AnyValue must be an object");
  if (const json* v = member(value, "stringValue", "string_value")) {
    pipeline::append_json_string(out, text_of(v, "stringValue"));
  } else if (const json* b = member(value, "boolValue", "bool_value")) {
    if (!b->is_boolean()) throw Malformed("boolValue must be true or false");
    out += b->get<bool>() ? "true" : "false";
  } else if (const json* i = member(value, "intValue", "int_value")) {
    out += std::to_string(integer_of<std::int64_t>(i, "intValue"));
  } else if (const json* d = member(value, "doubleValue", "double_value")) {
    out += double_json(double_of(*d));
  } else if (const json* a = member(value, "arrayValue", "array_value")) {
    out += '[';
    if (const json* values = member(*a, "values")) {
      if (!values->is_array()) throw Malformed("arrayValue.values must be an array");
      bool first = true;
      for (const json& element : *values) {
        if (!first) out += ',';
        first = false;
        append_any(out, element);
      }
    }
    out += ']';
  } else if (const json* kv = member(value, "kvlistValue", "kvlist_value")) {
    append_pairs(out, member(*kv, "values"));
  } else if (const json* bytes = member(value, "bytesValue", "bytes_value")) {
    pipeline::append_json_string(out, text_of(bytes, "bytesValue"));  // base64 already
  } else {
    out += "null";
  }
}

std::optional<std::string> attribute_text(const json* list, const std::string& key) {
  if (list == nullptr || !list->is_array()) return std::nullopt;
  for (const json& kv : *list) {
    const json* k = member(kv, "key");
    if (k == nullptr || !k->is_string() || k->get_ref<const std::string&>() != key) continue;
    const json* v = member(kv, "value");
    if (v == nullptr) return std::nullopt;
    if (const json* s = member(*v, "stringValue", "string_value"); s && s->is_string()) {
      return s->get<std::string>();
    }
    if (const json* i = member(*v, "intValue", "int_value")) {
      return std::to_string(integer_of<std::int64_t>(i, "intValue"));
    }
    return std::nullopt;
  }
  return std::nullopt;
}

// traceId / spanId: hex of `bytes` bytes (OTLP/JSON's exception to base64).
std::string hex_id(const json* value, std::size_t bytes, const char* what) {
  std::string text = text_of(value, what);
  if (text.empty()) return text;
  if (text.size() != bytes * 2 ||
      text.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    throw Malformed(std::string(what) + " must be " + std::to_string(bytes * 2) + " hex digits");
  }
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::unique_ptr<Context> context_of(const json& resource_logs, const json& scope_logs,
                                    const Settings& settings) {
  auto context = std::make_unique<Context>();
  const json* resource = member(resource_logs, "resource");
  const json* attributes = resource == nullptr ? nullptr : member(*resource, "attributes");
  context->resource_json.clear();
  append_pairs(context->resource_json, attributes);
  context->topic = attribute_text(attributes, settings.topic_attribute);
  context->instance_id = attribute_text(attributes, "service.instance.id");
  context->host_name = attribute_text(attributes, "host.name");
  const json* scope = member(scope_logs, "scope");
  const json none = json::object();
  const json& s = scope == nullptr ? none : *scope;
  std::string& out = context->scope_json;
  out = "{\"name\":";
  pipeline::append_json_string(out, text_of(member(s, "name"), "scope.name"));
  out += ",\"version\":";
  pipeline::append_json_string(out, text_of(member(s, "version"), "scope.version"));
  out += ",\"attributes\":";
  append_pairs(out, member(s, "attributes"));
  out += '}';
  return context;
}

Record record_of(const json& log, const Context* context) {
  if (!log.is_object()) throw Malformed("a log record must be an object");
  Record record;
  record.context = context;
  record.time_unix_nano =
      integer_of<std::uint64_t>(member(log, "timeUnixNano", "time_unix_nano"), "timeUnixNano");
  record.observed_time_unix_nano = integer_of<std::uint64_t>(
      member(log, "observedTimeUnixNano", "observed_time_unix_nano"), "observedTimeUnixNano");
  record.severity_number =
      integer_of<std::int64_t>(member(log, "severityNumber", "severity_number"), "severityNumber");
  record.severity_text = text_of(member(log, "severityText", "severity_text"), "severityText");
  if (const json* body = member(log, "body")) {
    record.body_json.clear();
    append_any(record.body_json, *body);
  }
  const json* attributes = member(log, "attributes");
  record.attributes_json.clear();
  append_pairs(record.attributes_json, attributes);
  record.uid = attribute_text(attributes, "log.record.uid");
  record.trace_id_hex = hex_id(member(log, "traceId", "trace_id"), 16, "traceId");
  record.span_id_hex = hex_id(member(log, "spanId", "span_id"), 8, "spanId");
  record.flags =
      static_cast<std::uint32_t>(integer_of<std::uint64_t>(member(log, "flags"), "flags"));
  record.event_name = text_of(member(log, "eventName", "event_name"), "eventName");
  return record;
}

const json& array_member(const json& object, const char* camel, const char* snake) {
  static const json kEmpty = json::array();
  const json* value = member(object, camel, snake);
  if (value == nullptr) return kEmpty;
  if (!value->is_array()) throw Malformed(std::string(camel) + " must be an array");
  return *value;
}

}  // namespace

Decoded read_json(std::string_view body, const Settings& settings, std::size_t max_records) {
  Decoded decoded;
  const json request = json::parse(body, nullptr, false);
  if (request.is_discarded() || !request.is_object()) {
    decoded.error = "not an OTLP ExportLogsServiceRequest in JSON";
    return decoded;
  }
  try {
    for (const json& resource_logs : array_member(request, "resourceLogs", "resource_logs")) {
      for (const json& scope_logs : array_member(resource_logs, "scopeLogs", "scope_logs")) {
        decoded.contexts.push_back(context_of(resource_logs, scope_logs, settings));
        const Context* context = decoded.contexts.back().get();
        for (const json& log : array_member(scope_logs, "logRecords", "log_records")) {
          if (decoded.records.size() >= max_records + 1) return decoded;
          decoded.records.push_back(record_of(log, context));
        }
      }
    }
  } catch (const Malformed& e) {
    decoded.error = std::string("not an OTLP ExportLogsServiceRequest: ") + e.what();
  } catch (const json::exception& e) {
    decoded.error = std::string("not an OTLP ExportLogsServiceRequest: ") + e.what();
  }
  return decoded;
}

}  // namespace ingest::otlp
