// OTLP logs in protobuf: ExportLogsServiceRequest read into records.
#include "otlp_logs.pb.h"
#include "pipeline/base64.hpp"
#include "pipeline/json_text.hpp"
#include "protocols/otlp_record.hpp"

namespace ingest::otlp {
namespace {

void append_any(std::string& out, const pipeline::otlp::AnyValue& value);

void append_pairs(std::string& out,
                  const google::protobuf::RepeatedPtrField<pipeline::otlp::KeyValue>& list) {
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(static_cast<std::size_t>(list.size()));
  for (const auto& kv : list) {
    std::string value;
    append_any(value, kv.value());
    pairs.emplace_back(kv.key(), std::move(value));
  }
  append_object(out, pairs);
}

void append_any(std::string& out, const pipeline::otlp::AnyValue& value) {
  using pipeline::otlp::AnyValue;
  switch (value.value_case()) {
    case AnyValue::kStringValue:
      pipeline::append_json_string(out, value.string_value());
      return;
    case AnyValue::kBoolValue:
      out += value.bool_value() ? "true" : "false";
      return;
    case AnyValue::kIntValue:
      out += std::to_string(value.int_value());
      return;
    case AnyValue::kDoubleValue:
      out += double_json(value.double_value());
      return;
    case AnyValue::kArrayValue: {
      out += '[';
      bool first = true;
      for (const auto& element : value.array_value().values()) {
        if (!first) out += ',';
        first = false;
        append_any(out, element);
      }
      out += ']';
      return;
    }
    case AnyValue::kKvlistValue:
      append_pairs(out, value.kvlist_value().values());
      return;
    case AnyValue::kBytesValue:
      pipeline::append_json_string(out, pipeline::base64_encode(value.bytes_value()));
      return;
    case AnyValue::VALUE_NOT_SET:
      break;
  }
  out += "null";
}

// The value of attribute `key` when it is a string (or another scalar, as text).
std::optional<std::string> attribute_text(
    const google::protobuf::RepeatedPtrField<pipeline::otlp::KeyValue>& list,
    const std::string& key) {
  for (const auto& kv : list) {
    if (kv.key() != key) continue;
    const auto& v = kv.value();
    switch (v.value_case()) {
      case pipeline::otlp::AnyValue::kStringValue:
        return v.string_value();
      case pipeline::otlp::AnyValue::kIntValue:
        return std::to_string(v.int_value());
      case pipeline::otlp::AnyValue::kBoolValue:
        return v.bool_value() ? "true" : "false";
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;
}

std::unique_ptr<Context> context_of(const pipeline::otlp::ResourceLogs& resource_logs,
                                    const pipeline::otlp::ScopeLogs& scope_logs,
                                    const Settings& settings) {
  auto context = std::make_unique<Context>();
  const auto& attributes = resource_logs.resource().attributes();
  context->resource_json.clear();
  append_pairs(context->resource_json, attributes);
  context->topic = attribute_text(attributes, settings.topic_attribute);
  context->instance_id = attribute_text(attributes, "service.instance.id");
  context->host_name = attribute_text(attributes, "host.name");
  const auto& scope = scope_logs.scope();
  std::string& out = context->scope_json;
  out = "{\"name\":";
  pipeline::append_json_string(out, scope.name());
  out += ",\"version\":";
  pipeline::append_json_string(out, scope.version());
  out += ",\"attributes\":";
  append_pairs(out, scope.attributes());
  out += '}';
  return context;
}

}  // namespace

Decoded read_protobuf(std::string_view body, const Settings& settings, std::size_t max_records) {
  Decoded decoded;
  pipeline::otlp::ExportLogsServiceRequest request;
  if (!request.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    decoded.error = "not an OTLP ExportLogsServiceRequest in protobuf";
    return decoded;
  }
  for (const auto& resource_logs : request.resource_logs()) {
    for (const auto& scope_logs : resource_logs.scope_logs()) {
      decoded.contexts.push_back(context_of(resource_logs, scope_logs, settings));
      const Context* context = decoded.contexts.back().get();
      for (const auto& log : scope_logs.log_records()) {
        if (decoded.records.size() >= max_records + 1) return decoded;
        Record record;
        record.context = context;
        record.time_unix_nano = log.time_unix_nano();
        record.observed_time_unix_nano = log.observed_time_unix_nano();
        record.severity_number = log.severity_number();
        record.severity_text = log.severity_text();
        if (log.has_body()) {
          record.body_json.clear();
          append_any(record.body_json, log.body());
        }
        record.attributes_json.clear();
        append_pairs(record.attributes_json, log.attributes());
        record.uid = attribute_text(log.attributes(), "log.record.uid");
        record.trace_id_hex = to_hex(log.trace_id());
        record.span_id_hex = to_hex(log.span_id());
        record.flags = log.flags();
        record.event_name = log.event_name();
        decoded.records.push_back(std::move(record));
      }
    }
  }
  return decoded;
}

}  // namespace ingest::otlp
