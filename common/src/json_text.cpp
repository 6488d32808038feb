#include "pipeline/json_text.hpp"

#include <utf8.h>
#include <iterator>

namespace pipeline {
namespace {

// Appends well-formed UTF-8 text as a JSON string, escaping what JSON
// requires; bytes of multi-byte sequences are copied as they are.
void append_well_formed(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + text.size() + 2);
  out += '"';
  for (const char byte : text) {
    const auto c = static_cast<unsigned char>(byte);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += byte;
        }
    }
  }
  out += '"';
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  if (utf8::is_valid(text.begin(), text.end())) {
    append_well_formed(out, text);
    return;
  }
  // Rare: one U+FFFD per ill-formed sequence (utfcpp's replace_invalid).
  std::string repaired;
  repaired.reserve(text.size() + 8);
  utf8::replace_invalid(text.begin(), text.end(), std::back_inserter(repaired));
  append_well_formed(out, repaired);
}

}  // namespace pipeline
