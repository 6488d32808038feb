#pragma once

#include <string>
#include <string_view>

namespace pipeline {

/// Appends `text` to `out` as a JSON string (quotes included): '"', '\' and
/// control characters escaped, every ill-formed UTF-8 sequence replaced by
/// U+FFFD, so that the output is always valid JSON. Written by hand for the
/// hot paths (a response, a message per event), where building a
/// nlohmann::json value for each string cost an allocation or two.
void append_json_string(std::string& out, std::string_view text);

}  // namespace pipeline
