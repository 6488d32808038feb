#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "workload.hpp"

namespace loadtest {

/// The body formats loadgen can send (POST /publish takes all of them).
enum class BodyFormat { kJsonArray, kNdjson };

/// How a request body goes on the wire: its format, and whether it is gzip
/// compressed (Content-Encoding: gzip, as log shippers send by default).
struct BodyCoding {
  BodyFormat format = BodyFormat::kJsonArray;
  bool gzip = false;
  /// "application/json" or "application/x-ndjson".
  const char* content_type() const;
  /// "gzip", or "" for none.
  const char* content_encoding() const { return gzip ? "gzip" : ""; }
};

/// The body of a request with these events: a JSON array, or one event per
/// line (NDJSON); gzip-compressed when `coding` says so.
std::string encode_body(const Workload& workload, const std::vector<PlannedEvent>& events,
                        const BodyCoding& coding);

/// `text` gzip-compressed (zlib's default level, a gzip header and
/// trailer). Throws std::runtime_error when zlib fails.
std::string gzip_compress(std::string_view text);

}  // namespace loadtest
