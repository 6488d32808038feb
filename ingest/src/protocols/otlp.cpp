// OTLP logs: the readers' records mapped onto events, and OTLP's answers.
#include "protocols/otlp.hpp"

#include <openssl/sha.h>

#include <charconv>
#include <cmath>
#include <set>

#include "otlp_logs.pb.h"
#include "pipeline/json_text.hpp"
#include "protocols/otlp_record.hpp"

namespace ingest::otlp {
namespace {

// The record as the payload of its event: the same JSON whichever encoding
// it came in, so that its identity is the same too.
std::string payload_of(const Record& record) {
  std::string out;
  out.reserve(256 + record.body_json.size() + record.attributes_json.size() +
              record.context->resource_json.size());
  out += "{\"body\":";
  out += record.body_json;
  out += ",\"severity_number\":" + std::to_string(record.severity_number);
  out += ",\"severity_text\":";
  pipeline::append_json_string(out, record.severity_text);
  out += ",\"attributes\":";
  out += record.attributes_json;
  out += ",\"resource\":";
  out += record.context->resource_json;
  out += ",\"scope\":";
  out += record.context->scope_json;
  out += ",\"trace_id\":\"" + record.trace_id_hex + "\",\"span_id\":\"" + record.span_id_hex + "\"";
  out += ",\"flags\":" + std::to_string(record.flags);
  out += ",\"event_name\":";
  pipeline::append_json_string(out, record.event_name);
  out += ",\"time_unix_nano\":\"" + std::to_string(record.time_unix_nano) + "\"";
  out += ",\"observed_time_unix_nano\":\"" + std::to_string(record.observed_time_unix_nano) + "\"}";
  return out;
}

std::string sha256_hex(std::string_view text, std::size_t digits) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return to_hex(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest))
      .substr(0, digits);
}

pipeline::EventVerdict map_record(std::size_t index, const Record& record, const Settings& settings,
                                  const pipeline::ValidationLimits& limits,
                                  std::int64_t now_micros) {
  pipeline::MappedEvent mapped;
  const Context& context = *record.context;
  mapped.topic = pipeline::topic_from(context.topic.value_or("unknown_service"));
  mapped.source = context.instance_id ? *context.instance_id
                  : context.host_name ? *context.host_name
                                      : "otlp";
  const std::uint64_t nanos =
      record.time_unix_nano != 0 ? record.time_unix_nano : record.observed_time_unix_nano;
  mapped.timestamp_micros = nanos != 0 ? static_cast<std::int64_t>(nanos / 1000) : now_micros;
  mapped.payload_json = payload_of(record);
  if (record.uid && !record.uid->empty()) {
    mapped.event_id = *record.uid;
  } else {
    std::string identity = mapped.topic;
    identity += '\0';
    identity += mapped.source;
    identity += '\0';
    identity += mapped.payload_json;
    mapped.event_id = "otlp-" + sha256_hex(identity, 32);
  }
  mapped.names.topic = "resource attribute " + settings.topic_attribute;
  mapped.names.event_id = "attribute log.record.uid";
  mapped.names.timestamp = "timeUnixNano";
  mapped.names.source = "resource attribute service.instance.id";
  mapped.names.payload = "logRecord";
  return pipeline::judge_event(index, std::move(mapped), limits);
}

}  // namespace

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    out += kDigits[u >> 4U];
    out += kDigits[u & 15U];
  }
  return out;
}

void append_object(std::string& out,
                   const std::vector<std::pair<std::string, std::string>>& pairs) {
  out += '{';
  std::set<std::string_view> seen;
  bool first = true;
  for (const auto& [key, value] : pairs) {
    if (!seen.insert(key).second) continue;  // the first of a repeated key
    if (!first) out += ',';
    first = false;
    pipeline::append_json_string(out, key);
    out += ':';
    out += value;
  }
  out += '}';
}

std::string double_json(double value) {
  if (std::isnan(value)) return "\"NaN\"";
  if (std::isinf(value)) return value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  char buffer[64];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string text(buffer, error == std::errc() ? end : buffer);
  if (text.find_first_of(".eE") == std::string::npos) text += ".0";
  return text;
}

pipeline::PublishBody decode(std::string_view body, Encoding encoding, const Settings& settings,
                             const pipeline::ValidationLimits& limits, std::int64_t now_micros) {
  pipeline::PublishBody result;
  if (encoding == Encoding::kJson) {
    result.error = pipeline::body_depth_error(body, limits.max_body_depth);
    if (result.error) return result;
  }
  const Decoded decoded = encoding == Encoding::kProtobuf
                              ? read_protobuf(body, settings, limits.max_events_per_request)
                              : read_json(body, settings, limits.max_events_per_request);
  if (!decoded.error.empty()) {
    result.error = pipeline::BodyError{pipeline::BodyErrorKind::kMalformedJson, decoded.error};
    return result;
  }
  if (decoded.records.size() > limits.max_events_per_request) {
    result.error =
        pipeline::BodyError{pipeline::BodyErrorKind::kTooManyEvents,
                            "more than INGEST_MAX_EVENTS_PER_REQUEST (" +
                                std::to_string(limits.max_events_per_request) + ") log records"};
    return result;
  }
  result.verdicts.reserve(decoded.records.size());
  for (std::size_t i = 0; i < decoded.records.size(); ++i) {
    result.verdicts.push_back(map_record(i, decoded.records[i], settings, limits, now_micros));
  }
  return result;
}

std::string success_body(Encoding encoding, std::size_t rejected, const std::string& message) {
  if (encoding == Encoding::kJson) {
    if (rejected == 0) return "{}";
    std::string out = "{\"partialSuccess\":{\"rejectedLogRecords\":\"" + std::to_string(rejected) +
                      "\",\"errorMessage\":";
    pipeline::append_json_string(out, message);
    out += "}}";
    return out;
  }
  pipeline::otlp::ExportLogsServiceResponse response;
  if (rejected > 0) {
    response.mutable_partial_success()->set_rejected_log_records(
        static_cast<std::int64_t>(rejected));
    response.mutable_partial_success()->set_error_message(message);
  }
  return response.SerializeAsString();
}

std::string status_body(Encoding encoding, int grpc_code, const std::string& message) {
  if (encoding == Encoding::kJson) {
    std::string out = "{\"code\":" + std::to_string(grpc_code) + ",\"message\":";
    pipeline::append_json_string(out, message);
    out += '}';
    return out;
  }
  pipeline::otlp::Status status;
  status.set_code(grpc_code);
  status.set_message(message);
  return status.SerializeAsString();
}

const char* content_type(Encoding encoding) {
  return encoding == Encoding::kJson ? "application/json" : "application/x-protobuf";
}

}  // namespace ingest::otlp
