// Loki push: the streams of a JSON or protobuf (snappy) request read into
// entries, each mapped onto an event.
#include "protocols/loki.hpp"

#include <openssl/sha.h>
#include <snappy.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "loki_push.pb.h"
#include "pipeline/json_text.hpp"

namespace ingest::loki {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kTooLarge = "too large";

struct Entry {
  std::int64_t nanos = 0;
  std::string line;
  Pairs metadata;
};

struct Stream {
  Pairs labels;  // sorted by name
  std::vector<Entry> entries;
};

struct Read {
  std::vector<Stream> streams;
  std::size_t entries = 0;
  std::string error;
};

void append_pairs(std::string& out, const Pairs& pairs) {
  out += '{';
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    if (i > 0) out += ',';
    pipeline::append_json_string(out, pairs[i].first);
    out += ':';
    pipeline::append_json_string(out, pairs[i].second);
  }
  out += '}';
}

std::string sha256_hex32(std::string_view text) {
  static constexpr char kDigits[] = "0123456789abcdef";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::string out;
  for (std::size_t i = 0; i < 16; ++i) {
    out += kDigits[digest[i] >> 4U];
    out += kDigits[digest[i] & 15U];
  }
  return out;
}

const std::string* label(const Pairs& labels, const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    const auto it =
        std::lower_bound(labels.begin(), labels.end(), std::make_pair(name, std::string()));
    if (it != labels.end() && it->first == name) return &it->second;
  }
  return nullptr;
}

Read read_json(std::string_view body, std::size_t max_entries) {
  using nlohmann::json;
  Read read;
  const json request = json::parse(body, nullptr, false);
  if (request.is_discarded() || !request.is_object()) {
    read.error = "not a Loki push request in JSON";
    return read;
  }
  const auto streams = request.find("streams");
  if (streams == request.end() || !streams->is_array()) {
    read.error = "a push request has an array \"streams\"";
    return read;
  }
  for (const json& s : *streams) {
    Stream stream;
    const auto labels = s.find("stream");
    if (!s.is_object() || labels == s.end() || !labels->is_object()) {
      read.error = "each stream has an object \"stream\" of labels";
      return read;
    }
    for (const auto& [name, value] : labels->items()) {
      if (!value.is_string()) {
        read.error = "label " + name + ": values are strings";
        return read;
      }
      if (!value.get_ref<const std::string&>().empty()) stream.labels.emplace_back(name, value);
    }
    std::sort(stream.labels.begin(), stream.labels.end());
    const auto values = s.find("values");
    if (values == s.end() || values->is_null()) continue;
    if (!values->is_array()) {
      read.error = "\"values\" is an array of [timestamp, line] pairs";
      return read;
    }
    for (const json& v : *values) {
      if (v.is_null()) continue;
      if (!v.is_array() || v.size() < 2 || !v[0].is_string() || !v[1].is_string()) {
        read.error = "each value is [\"<unix epoch nanoseconds>\", \"<line>\"]";
        return read;
      }
      Entry entry;
      const auto& ts = v[0].get_ref<const std::string&>();
      const auto [end, error] = std::from_chars(ts.data(), ts.data() + ts.size(), entry.nanos);
      if (error != std::errc() || end != ts.data() + ts.size()) {
        read.error = "timestamp " + ts + ": not an integer of nanoseconds";
        return read;
      }
      entry.line = v[1].get<std::string>();
      if (v.size() > 2 && v[2].is_object()) {
        for (const auto& [name, value] : v[2].items()) {
          if (!value.is_string()) {
            read.error = "structured metadata " + name + ": values are strings";
            return read;
          }
          entry.metadata.emplace_back(name, value);
        }
        std::sort(entry.metadata.begin(), entry.metadata.end());
      }
      stream.entries.push_back(std::move(entry));
      if (++read.entries > max_entries) return read;
    }
    read.streams.push_back(std::move(stream));
  }
  return read;
}

Read read_protobuf(std::string_view body, std::size_t max_entries, std::size_t max_bytes) {
  Read read;
  std::size_t length = 0;
  if (!snappy::GetUncompressedLength(body.data(), body.size(), &length)) {
    read.error = "snappy: corrupt input (a protobuf push is compressed with snappy's block format)";
    return read;
  }
  if (length > max_bytes) {
    read.error = kTooLarge;
    return read;
  }
  std::string raw;
  if (!snappy::Uncompress(body.data(), body.size(), &raw)) {
    read.error = "snappy: corrupt input";
    return read;
  }
  pipeline::loki::PushRequest request;
  if (!request.ParseFromString(raw)) {
    read.error = "not a Loki PushRequest in protobuf";
    return read;
  }
  for (const auto& s : request.streams()) {
    Stream stream;
    if (!parse_labels(s.labels(), &stream.labels, &read.error)) return read;
    for (const auto& e : s.entries()) {
      Entry entry;
      const auto& ts = e.timestamp();
      if (ts.nanos() < 0 || ts.nanos() > 999'999'999) {
        read.error = "timestamp nanos outside 0..999999999";
        return read;
      }
      entry.nanos = ts.seconds() * 1'000'000'000 + ts.nanos();
      entry.line = e.line();
      for (const auto& pair : e.structured_metadata()) {
        entry.metadata.emplace_back(pair.name(), pair.value());
      }
      std::sort(entry.metadata.begin(), entry.metadata.end());
      stream.entries.push_back(std::move(entry));
      if (++read.entries > max_entries) return read;
    }
    read.streams.push_back(std::move(stream));
  }
  return read;
}

pipeline::EventVerdict map_entry(std::size_t index, const Stream& stream, const Entry& entry,
                                 const std::string& labels_json, const Settings& settings,
                                 const pipeline::ValidationLimits& limits) {
  pipeline::MappedEvent mapped;
  const std::string* topic = label(stream.labels, settings.topic_labels);
  const std::string* source = label(stream.labels, settings.source_labels);
  mapped.topic = pipeline::topic_from(topic != nullptr ? *topic : "unknown_service");
  mapped.source = source != nullptr ? *source : "loki";
  // Floor division: a time before 1970 stays in its microsecond.
  mapped.timestamp_micros = entry.nanos / 1000 - (entry.nanos % 1000 < 0 ? 1 : 0);
  std::string& payload = mapped.payload_json;
  payload.reserve(entry.line.size() + labels_json.size() + 64);
  payload = "{\"line\":";
  pipeline::append_json_string(payload, entry.line);
  payload += ",\"labels\":";
  payload += labels_json;
  payload += ",\"structured_metadata\":";
  append_pairs(payload, entry.metadata);
  payload += '}';
  std::string identity = labels_json;
  identity += '\0';
  identity += std::to_string(entry.nanos);
  identity += '\0';
  identity += entry.line;
  mapped.event_id = "loki-" + sha256_hex32(identity);
  mapped.names.topic = "label " + (settings.topic_labels.empty() ? std::string("service_name")
                                                                 : settings.topic_labels.front());
  mapped.names.timestamp = "timestamp";
  mapped.names.source =
      "label " +
      (settings.source_labels.empty() ? std::string("host") : settings.source_labels.front());
  mapped.names.payload = "line";
  return pipeline::judge_event(index, std::move(mapped), limits);
}

}  // namespace

pipeline::PublishBody decode(std::string_view body, Encoding encoding, const Settings& settings,
                             const pipeline::ValidationLimits& limits, std::size_t max_inflated) {
  pipeline::PublishBody result;
  if (encoding == Encoding::kJson) {
    result.error = pipeline::body_depth_error(body, limits.max_body_depth);
    if (result.error) return result;
  }
  const Read read = encoding == Encoding::kJson
                        ? read_json(body, limits.max_events_per_request)
                        : read_protobuf(body, limits.max_events_per_request, max_inflated);
  if (read.error == kTooLarge) {
    result.error = pipeline::BodyError{pipeline::BodyErrorKind::kTooLarge,
                                       "the snappy body inflates past INGEST_MAX_BODY_BYTES (" +
                                           std::to_string(max_inflated) + " bytes)"};
    return result;
  }
  if (!read.error.empty()) {
    result.error = pipeline::BodyError{pipeline::BodyErrorKind::kMalformedJson, read.error};
    return result;
  }
  if (read.entries > limits.max_events_per_request) {
    result.error =
        pipeline::BodyError{pipeline::BodyErrorKind::kTooManyEvents,
                            "more than INGEST_MAX_EVENTS_PER_REQUEST (" +
                                std::to_string(limits.max_events_per_request) + ") entries"};
    return result;
  }
  result.verdicts.reserve(read.entries);
  for (const Stream& stream : read.streams) {
    std::string labels_json;
    append_pairs(labels_json, stream.labels);
    for (const Entry& entry : stream.entries) {
      result.verdicts.push_back(
          map_entry(result.verdicts.size(), stream, entry, labels_json, settings, limits));
    }
  }
  return result;
}

}  // namespace ingest::loki
