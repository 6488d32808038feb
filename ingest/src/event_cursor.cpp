#include <charconv>
#include <vector>

#include "ingest/event_position.hpp"
#include "ingest/event_store.hpp"

namespace ingest {
namespace {

constexpr const char* kCursorVersion = "v1";

std::string base64url_encode(const std::string& in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16U |
                       static_cast<unsigned char>(in[i + 1]) << 8U |
                       static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[v >> 18U & 63U];
    out += kAlphabet[v >> 12U & 63U];
    out += kAlphabet[v >> 6U & 63U];
    out += kAlphabet[v & 63U];
  }
  const std::size_t rest = in.size() - i;
  if (rest > 0) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16U;
    if (rest == 2) v |= static_cast<unsigned char>(in[i + 1]) << 8U;
    out += kAlphabet[v >> 18U & 63U];
    out += kAlphabet[v >> 12U & 63U];
    if (rest == 2) out += kAlphabet[v >> 6U & 63U];
  }
  return out;
}

std::optional<std::string> base64url_decode(const std::string& in) {
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (const char c : in) {
    unsigned value = 0;
    if (c >= 'A' && c <= 'Z') {
      value = static_cast<unsigned>(c - 'A');
    } else if (c >= 'a' && c <= 'z') {
      value = static_cast<unsigned>(c - 'a' + 26);
    } else if (c >= '0' && c <= '9') {
      value = static_cast<unsigned>(c - '0' + 52);
    } else if (c == '-') {
      value = 62;
    } else if (c == '_') {
      value = 63;
    } else {
      return std::nullopt;
    }
    buffer = (buffer << 6U) | value;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> static_cast<unsigned>(bits)) & 0xFFU);
    }
  }
  return out;
}

}  // namespace

std::string EventCursor::encode(bool descending) const {
  return base64url_encode(std::string(kCursorVersion) + ":" + (descending ? "d" : "a") + ":" +
                          std::to_string(ts_micros) + ":" + std::to_string(stream_seq) + ":" +
                          std::to_string(id) + ":" + std::to_string(snapshot_id));
}

std::optional<EventCursor> EventCursor::decode(const std::string& token, bool descending) {
  const auto text = base64url_decode(token);
  if (!text) return std::nullopt;
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t colon = text->find(':', start);
    parts.push_back(text->substr(start, colon == std::string::npos ? colon : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (parts.size() != 6 || parts[0] != kCursorVersion || parts[1] != (descending ? "d" : "a")) {
    return std::nullopt;
  }
  std::int64_t numbers[4] = {};
  for (std::size_t i = 0; i < 4; ++i) {
    try {
      std::size_t used = 0;
      numbers[i] = std::stoll(parts[i + 2], &used);
      if (used != parts[i + 2].size()) return std::nullopt;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return EventCursor{numbers[0], numbers[1], numbers[2], numbers[3]};
}

std::string EventPosition::token() const {
  return std::to_string(created) + "-" + std::to_string(seq);
}

std::optional<EventPosition> EventPosition::parse(std::string_view token) {
  const std::size_t dash = token.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == token.size()) return std::nullopt;
  EventPosition position;
  const char* begin = token.data();
  const auto created = std::from_chars(begin, begin + dash, position.created);
  const auto seq = std::from_chars(begin + dash + 1, begin + token.size(), position.seq);
  if (created.ec != std::errc() || created.ptr != begin + dash || seq.ec != std::errc() ||
      seq.ptr != begin + token.size() || position.created < 0) {
    return std::nullopt;
  }
  return position;
}

}  // namespace ingest
