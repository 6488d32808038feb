#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol_bodies.hpp"
#include "workload.hpp"

namespace loadtest {

/// The body formats loadgen can send: POST /publish's JSON array and NDJSON,
/// and the shipper protocols (protocol_bodies.hpp) on their own paths.
enum class BodyFormat { kJsonArray, kNdjson, kOtlpProtobuf, kOtlpJson, kBulk, kLoki };

/// The --body names, in BodyFormat's order: json, ndjson, otlp, otlp-json,
/// bulk, loki. nullopt for another name.
std::optional<BodyFormat> body_format_named(std::string_view name);
const char* body_format_name(BodyFormat format);

/// How a request body goes on the wire: its format, and whether it is gzip
/// compressed (Content-Encoding: gzip, as log shippers send by default).
struct BodyCoding {
  BodyFormat format = BodyFormat::kJsonArray;
  bool gzip = false;
  /// "application/json", "application/x-ndjson", or the protocol's.
  const char* content_type() const;
  /// "gzip", or "" for none.
  const char* content_encoding() const { return gzip ? "gzip" : ""; }
  /// "/publish", or the protocol's path.
  const char* path() const;
  /// The shipper protocol, or nullopt for /publish's own formats.
  std::optional<Protocol> protocol() const;
};

/// The body of a request with these events: a JSON array, one event per
/// line (NDJSON), or the protocol's; gzip-compressed when `coding` says so.
std::string encode_body(const Workload& workload, const std::vector<PlannedEvent>& events,
                        const BodyCoding& coding);

/// `text` gzip-compressed (zlib's default level, a gzip header and
/// trailer). Throws std::runtime_error when zlib fails.
std::string gzip_compress(std::string_view text);

}  // namespace loadtest
