#pragma once

// One OTLP LogRecord with its resource and scope, as either encoding's
// reader found it, its values already rendered as JSON; private to the
// OTLP files of protocols/.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocols/otlp.hpp"

namespace ingest::otlp {

/// The resource or scope a record belongs to, rendered once for all its records.
struct Context {
  std::string resource_json = "{}";  ///< the resource attributes as a JSON object
  std::string scope_json = "{}";     ///< {"name", "version", "attributes"}
  std::optional<std::string> topic;  ///< the topic attribute's value, as text
  std::optional<std::string> instance_id;
  std::optional<std::string> host_name;
};

struct Record {
  const Context* context = nullptr;
  std::uint64_t time_unix_nano = 0;
  std::uint64_t observed_time_unix_nano = 0;
  std::int64_t severity_number = 0;
  std::string severity_text;
  std::string body_json = "null";
  std::string attributes_json = "{}";
  std::optional<std::string> uid;  ///< the attribute log.record.uid, when a string
  std::string trace_id_hex;
  std::string span_id_hex;
  std::uint32_t flags = 0;
  std::string event_name;
};

/// What a reader gives: the contexts (records point into them) and the
/// records in request order, or why the body is not an export request.
struct Decoded {
  std::vector<std::unique_ptr<Context>> contexts;
  std::vector<Record> records;
  std::string error;  ///< "" when decoded
};

// The readers (otlp_protobuf.cpp, otlp_json.cpp); they stop early past
// `max_records` (the caller answers 413).
Decoded read_protobuf(std::string_view body, const Settings& settings, std::size_t max_records);
Decoded read_json(std::string_view body, const Settings& settings, std::size_t max_records);

/// Lower-case hex of `bytes`.
std::string to_hex(std::string_view bytes);

/// Appends a JSON object {key: value_json, ...} of pairs, the first of a
/// repeated key kept (an I-JSON object).
void append_object(std::string& out, const std::vector<std::pair<std::string, std::string>>& pairs);

/// A double as JSON: the shortest text that reads back the same, with a
/// decimal point or exponent so that it stays a double; NaN and the
/// infinities as the strings "NaN", "Infinity", "-Infinity".
std::string double_json(double value);

}  // namespace ingest::otlp
