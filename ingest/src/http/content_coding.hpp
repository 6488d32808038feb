#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ingest::http {

/// A request body after its Content-Encoding (RFC 9110 §8.4) was undone.
struct DecodedBody {
  enum class Kind {
    kIdentity,     ///< no coding (or `identity`): the body is used as it came, not copied
    kDecoded,      ///< `text` holds the inflated body
    kUnsupported,  ///< a coding other than gzip, x-gzip, deflate, identity: 415
    kTooLarge,     ///< the inflated body would exceed the cap: 413
    kCorrupt,      ///< not valid data of its coding (or truncated): 400
  };
  Kind kind = Kind::kIdentity;
  std::string text;   ///< the inflated body for kDecoded
  std::string error;  ///< what went wrong, for the client, for the other kinds
};

/// Undoes the Content-Encoding `coding` (the header's value, "" when absent)
/// of `body`. gzip (and x-gzip, members one after another included) and
/// deflate (the zlib format RFC 9110 means, or raw deflate as some clients
/// send it) are inflated incrementally with a hard cap of `max_output`
/// bytes: a body that would inflate past it stops there, as kTooLarge, so a
/// small "zip bomb" never fills memory. `limit_name` is the setting the cap
/// comes from, named in the error. Never throws (but std::bad_alloc).
DecodedBody decode_content(std::string_view coding, std::string_view body, std::size_t max_output,
                           std::string_view limit_name);

}  // namespace ingest::http
