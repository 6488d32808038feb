#include "protocol_bodies.hpp"

#include <snappy.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

namespace loadtest {
namespace {

// Protobuf's wire format, as much of it as these bodies need
// (https://protobuf.dev/programming-guides/encoding/).
class Proto {
 public:
  void varint(int field, std::uint64_t value) {
    tag(field, 0);
    raw_varint(value);
  }
  void fixed64(int field, std::uint64_t value) {
    tag(field, 1);
    for (int i = 0; i < 8; ++i) out_ += static_cast<char>((value >> (8 * i)) & 0xff);
  }
  void bytes(int field, std::string_view value) {  // strings and embedded messages
    tag(field, 2);
    raw_varint(value.size());
    out_ += value;
  }
  std::string take() { return std::move(out_); }

 private:
  void tag(int field, int wire_type) {
    raw_varint((static_cast<std::uint64_t>(field) << 3) | static_cast<std::uint64_t>(wire_type));
  }
  void raw_varint(std::uint64_t value) {
    while (value >= 0x80) {
      out_ += static_cast<char>((value & 0x7f) | 0x80);
      value >>= 7;
    }
    out_ += static_cast<char>(value);
  }
  std::string out_;
};

// Reads the varint at `at`; false at the end of the input or on a bad one.
bool read_varint(std::string_view in, std::size_t& at, std::uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && at < in.size(); shift += 7) {
    const auto byte = static_cast<unsigned char>(in[at++]);
    value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// The keys of a request grouped by topic, topics in the order they first come.
std::vector<std::pair<std::string, std::vector<std::uint64_t>>> by_topic(
    const Workload& workload, const std::vector<PlannedEvent>& events) {
  std::vector<std::pair<std::string, std::vector<std::uint64_t>>> groups;
  std::map<std::string, std::size_t> index;
  for (const PlannedEvent& event : events) {
    std::string topic = workload.topic(event.key);
    const auto [it, inserted] = index.emplace(topic, groups.size());
    if (inserted) groups.emplace_back(std::move(topic), std::vector<std::uint64_t>{});
    groups[it->second].second.push_back(event.key);
  }
  return groups;
}

std::string any_string(std::string_view value) {
  Proto any;
  any.bytes(1, value);  // AnyValue.string_value
  return any.take();
}

std::string key_value(std::string_view key, std::string_view value) {
  Proto kv;
  kv.bytes(1, key);                // KeyValue.key
  kv.bytes(2, any_string(value));  // KeyValue.value
  return kv.take();
}

std::uint64_t unix_nanos(const Workload& workload, std::uint64_t key) {
  return static_cast<std::uint64_t>(workload.timestamp_ms(key)) * 1'000'000U;
}

// ExportLogsServiceRequest: one ResourceLogs per topic (service.name), as
// an SDK sends one per service.
std::string otlp_protobuf(const Workload& workload, const std::vector<PlannedEvent>& events) {
  Proto request;
  for (const auto& [topic, keys] : by_topic(workload, events)) {
    Proto resource;
    resource.bytes(1, key_value("service.name", topic));  // Resource.attributes
    resource.bytes(1, key_value("service.instance.id", "loadgen"));
    Proto scope;
    scope.bytes(1, "loadgen");  // InstrumentationScope.name
    Proto scope_logs;
    scope_logs.bytes(1, scope.take());
    for (const std::uint64_t key : keys) {
      Proto record;
      const std::uint64_t nanos = unix_nanos(workload, key);
      record.fixed64(1, nanos);   // time_unix_nano
      record.fixed64(11, nanos);  // observed_time_unix_nano
      record.varint(2, 9);        // severity_number: INFO
      record.bytes(3, "INFO");
      record.bytes(5, any_string(workload.payload_json(key)));  // body
      record.bytes(6, key_value("log.record.uid", workload.event_id(key)));
      scope_logs.bytes(2, record.take());
    }
    Proto resource_logs;
    resource_logs.bytes(1, resource.take());
    resource_logs.bytes(2, scope_logs.take());
    request.bytes(1, resource_logs.take());
  }
  return request.take();
}

nlohmann::json json_key_value(const std::string& key, const std::string& value) {
  return {{"key", key}, {"value", {{"stringValue", value}}}};
}

// The same request in OTLP's JSON encoding (64-bit integers as strings).
std::string otlp_json(const Workload& workload, const std::vector<PlannedEvent>& events) {
  nlohmann::json resource_logs = nlohmann::json::array();
  for (const auto& [topic, keys] : by_topic(workload, events)) {
    nlohmann::json records = nlohmann::json::array();
    for (const std::uint64_t key : keys) {
      const std::string nanos = std::to_string(unix_nanos(workload, key));
      records.push_back(
          {{"timeUnixNano", nanos},
           {"observedTimeUnixNano", nanos},
           {"severityNumber", 9},
           {"severityText", "INFO"},
           {"body", {{"stringValue", workload.payload_json(key)}}},
           {"attributes", {json_key_value("log.record.uid", workload.event_id(key))}}});
    }
    resource_logs.push_back(
        {{"resource",
          {{"attributes",
            {json_key_value("service.name", topic),
             json_key_value("service.instance.id", "loadgen")}}}},
         {"scopeLogs", {{{"scope", {{"name", "loadgen"}}}, {"logRecords", std::move(records)}}}}});
  }
  return nlohmann::json{{"resourceLogs", std::move(resource_logs)}}.dump();
}

// Elasticsearch bulk: a create action with _index and _id, then the document
// (@timestamp, host, and the payload's fields), each line ending in \n.
std::string bulk(const Workload& workload, const std::vector<PlannedEvent>& events) {
  std::string body;
  body.reserve(events.size() * (workload.config().payload_bytes + 160));
  for (const PlannedEvent& event : events) {
    // Every field is plain ASCII without quotes or backslashes: no escaping.
    body += R"({"create":{"_index":")";
    body += workload.topic(event.key);
    body += R"(","_id":")";
    body += workload.event_id(event.key);
    body += "\"}}\n{\"@timestamp\":\"";
    body += workload.timestamp(event.key);
    body += R"(","host":"loadgen",)";
    body += workload.payload_json(event.key).substr(1);  // the payload's fields and its '}'
    body += '\n';
  }
  return body;
}

// Loki's PushRequest, one stream per topic, compressed with snappy's block
// format, as Promtail and Alloy send it.
std::string loki(const Workload& workload, const std::vector<PlannedEvent>& events) {
  Proto request;
  for (const auto& [topic, keys] : by_topic(workload, events)) {
    Proto stream;
    stream.bytes(1, "{service_name=\"" + topic + "\", host=\"loadgen\"}");  // labels
    for (const std::uint64_t key : keys) {
      const std::int64_t ms = workload.timestamp_ms(key);
      Proto timestamp;
      timestamp.varint(1, static_cast<std::uint64_t>(ms / 1000));              // seconds
      timestamp.varint(2, static_cast<std::uint64_t>(ms % 1000) * 1'000'000);  // nanos
      Proto entry;
      entry.bytes(1, timestamp.take());
      // The line carries the event_id: Loki's identity of an entry is its
      // labels, time and line, and two runs must not share one.
      entry.bytes(2, workload.event_id(key) + " " + workload.payload_json(key));  // line
      stream.bytes(2, entry.take());
    }
    request.bytes(1, stream.take());
  }
  std::string compressed;
  const std::string raw = request.take();
  snappy::Compress(raw.data(), raw.size(), &compressed);
  return compressed;
}

// rejected_log_records of an ExportLogsServiceResponse (0 when absent).
bool otlp_rejected_protobuf(std::string_view in, std::uint64_t& rejected) {
  rejected = 0;
  std::size_t at = 0;
  std::uint64_t tag = 0;
  std::uint64_t length = 0;
  while (at < in.size()) {
    if (!read_varint(in, at, tag) || (tag & 7) != 2 || !read_varint(in, at, length) ||
        length > in.size() - at) {
      return false;
    }
    if (tag >> 3 == 1) {  // partial_success
      const std::string_view partial = in.substr(at, length);
      std::size_t p = 0;
      std::uint64_t inner = 0;
      if (read_varint(partial, p, inner) && inner == (1U << 3) &&
          !read_varint(partial, p, rejected)) {
        return false;
      }
    }
    at += length;
  }
  return true;
}

bool otlp_rejected_json(std::string_view in, std::uint64_t& rejected) {
  rejected = 0;
  const auto body = nlohmann::json::parse(in, nullptr, false);
  if (!body.is_object()) return false;
  const auto partial = body.find("partialSuccess");
  if (partial == body.end() || !partial->is_object()) return true;
  const auto count = partial->find("rejectedLogRecords");
  if (count == partial->end()) return true;
  if (count->is_string()) {
    rejected = std::stoull(count->get<std::string>());
  } else if (count->is_number_unsigned()) {
    rejected = count->get<std::uint64_t>();
  }
  return true;
}

std::vector<EventAnswer> bulk_answer(std::string_view in, std::size_t events, std::string* error) {
  const auto body = nlohmann::json::parse(in, nullptr, false);
  if (!body.is_object() || !body.contains("items") || !body["items"].is_array() ||
      body["items"].size() != events) {
    *error = "a bulk answer without one item per action: " + std::string(in.substr(0, 300));
    return {};
  }
  std::vector<EventAnswer> answers;
  for (const auto& item : body["items"]) {
    const auto create = item.find("create");
    const int status = create != item.end() ? create->value("status", 0) : 0;
    if (status == 201) {
      answers.push_back(EventAnswer::kStored);
    } else if (status == 409) {
      answers.push_back(EventAnswer::kDuplicate);
    } else if (status == 429) {
      answers.push_back(EventAnswer::kRetry);
    } else {
      if (error->empty()) *error = "bulk item: " + item.dump().substr(0, 300);
      answers.push_back(EventAnswer::kRejected);
    }
  }
  return answers;
}

}  // namespace

const char* protocol_path(Protocol protocol) {
  switch (protocol) {
    case Protocol::kOtlpProtobuf:
    case Protocol::kOtlpJson:
      return "/v1/logs";
    case Protocol::kBulk:
      return "/_bulk";
    case Protocol::kLoki:
      return "/loki/api/v1/push";
  }
  return "/";
}

const char* protocol_content_type(Protocol protocol) {
  switch (protocol) {
    case Protocol::kOtlpProtobuf:
    case Protocol::kLoki:
      return "application/x-protobuf";
    case Protocol::kOtlpJson:
      return "application/json";
    case Protocol::kBulk:
      return "application/x-ndjson";
  }
  return "application/octet-stream";
}

std::string protocol_body(Protocol protocol, const Workload& workload,
                          const std::vector<PlannedEvent>& events) {
  switch (protocol) {
    case Protocol::kOtlpProtobuf:
      return otlp_protobuf(workload, events);
    case Protocol::kOtlpJson:
      return otlp_json(workload, events);
    case Protocol::kBulk:
      return bulk(workload, events);
    case Protocol::kLoki:
      return loki(workload, events);
  }
  return {};
}

std::vector<EventAnswer> read_protocol_answer(Protocol protocol, int status, std::string_view body,
                                              std::size_t events, std::string* error) {
  if (protocol == Protocol::kBulk) {
    if (status == 200) return bulk_answer(body, events, error);
  } else if (protocol == Protocol::kLoki) {
    if (status == 204) return std::vector<EventAnswer>(events, EventAnswer::kDelivered);
  } else if (status == 200) {
    std::uint64_t rejected = 0;
    const bool ok = protocol == Protocol::kOtlpJson ? otlp_rejected_json(body, rejected)
                                                    : otlp_rejected_protobuf(body, rejected);
    if (!ok || rejected > events) {
      *error = "an OTLP answer that is no ExportLogsServiceResponse";
      return {};
    }
    // The answer counts the rejected records without naming them.
    std::vector<EventAnswer> answers(events, EventAnswer::kDelivered);
    for (std::uint64_t i = 0; i < rejected; ++i) answers[i] = EventAnswer::kRejected;
    if (rejected > 0) *error = "OTLP partial success: " + std::string(body.substr(0, 300));
    return answers;
  }
  *error = "HTTP " + std::to_string(status) + ": " + std::string(body.substr(0, 300));
  return {};
}

}  // namespace loadtest
