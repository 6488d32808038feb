// CloudEvents identity and rendering: the event key of (source, id), its
// inverse, and a stored event as structured-mode JSON.
#include <openssl/evp.h>
#include <utf8.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "json_layout.hpp"
#include "pipeline/cloudevents.hpp"
#include "pipeline/json_text.hpp"

namespace pipeline::cloudevents {
namespace {

constexpr std::string_view kReadablePrefix = "ce:";
constexpr std::string_view kHashPrefix = "ce-sha256:";

std::string sha256_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    return {};
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::size_t{2} * length);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

std::size_t characters(std::string_view text) {
  return utf8::is_valid(text.begin(), text.end())
             ? static_cast<std::size_t>(utf8::distance(text.begin(), text.end()))
             : text.size();
}

}  // namespace

std::string event_key(std::string_view source, std::string_view id, std::size_t max_length) {
  std::string key(kReadablePrefix);
  key += std::to_string(source.size());
  key += ':';
  key += source;
  key += ':';
  key += id;
  if (characters(key) <= max_length) return key;
  std::string hashed = std::string(kHashPrefix) + sha256_hex(key);
  if (hashed.size() == kHashPrefix.size() || hashed.size() > max_length) return {};
  return hashed;
}

std::string id_of(const Event& event) {
  const std::string& key = event.event_id;
  if (key.compare(0, kReadablePrefix.size(), kReadablePrefix) != 0) return key;
  std::size_t pos = kReadablePrefix.size();
  std::size_t length = 0;
  const std::size_t digits_start = pos;
  while (pos < key.size() && pos - digits_start < 10 &&
         std::isdigit(static_cast<unsigned char>(key[pos])) != 0) {
    length = length * 10 + static_cast<std::size_t>(key[pos++] - '0');
  }
  if (pos == digits_start || pos >= key.size() || key[pos] != ':') return key;
  ++pos;
  if (key.size() < pos + length + 1 || key.compare(pos, length, event.source) != 0 ||
      length != event.source.size() || key[pos + length] != ':') {
    return key;
  }
  return key.substr(pos + length + 1);
}

void append_json(std::string& out, const Event& event) {
  out += R"({"specversion":"1.0","id":)";
  append_json_string(out, id_of(event));
  out += R"(,"source":)";
  append_json_string(out, event.source);
  out += R"(,"type":)";
  append_json_string(out, event.topic);
  out += R"(,"time":)";
  append_json_string(out, event.timestamp);
  out += R"(,"datacontenttype":"application/json","data":)";
  out += event.payload_json;
  out += '}';
}

std::string to_json(const Event& event) {
  std::string out;
  out.reserve(128 + event.event_id.size() + event.source.size() + event.topic.size() +
              event.payload_json.size());
  append_json(out, event);
  return out;
}

std::string from_stored_json(std::string_view native) {
  const BodyLayout layout = scan_body_layout(native);
  if (!layout.root_event.payload) return {};
  const auto readable = without_overflowing_numbers(native);
  const auto object =
      nlohmann::json::parse(readable ? std::string_view(*readable) : native, nullptr, false);
  if (!object.is_object()) return {};
  const auto text = [&](const char* name) {
    const auto it = object.find(name);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  Event event;
  event.topic = text("topic");
  event.event_id = text("event_id");
  event.timestamp = text("timestamp");
  event.source = text("source");
  if (event.topic.empty() || event.event_id.empty()) return {};
  event.payload_json = std::string(*layout.root_event.payload);
  return to_json(event);
}

bool is_json_media_type(std::string_view content_type) {
  std::string base(content_type.substr(0, content_type.find(';')));
  const auto first = base.find_first_not_of(" \t");
  if (first == std::string::npos) return false;
  base = base.substr(first, base.find_last_not_of(" \t") - first + 1);
  std::transform(base.begin(), base.end(), base.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto slash = base.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == base.size()) return false;
  return base == "application/json" ||
         (base.size() > 5 && base.compare(base.size() - 5, 5, "+json") == 0);
}

}  // namespace pipeline::cloudevents
