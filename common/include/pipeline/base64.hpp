#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pipeline {

/// Base64 of RFC 4648 §4 (the standard alphabet, padded).
std::string base64_encode(std::string_view bytes);

/// Decodes RFC 4648 §4 base64; padding may be left out (as protobuf's JSON
/// mapping and some encoders do), whitespace is not allowed. nullopt when
/// `text` is not base64.
std::optional<std::string> base64_decode(std::string_view text);

/// The URL- and file-safe variant (RFC 4648 §5: '-' and '_'), unpadded.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace pipeline
