#include <charconv>
#include <limits>
#include <vector>

#include "ingest/event_position.hpp"
#include "ingest/event_store.hpp"
#include "pipeline/base64.hpp"

namespace ingest {
namespace {

constexpr const char* kCursorVersion = "v1";

}  // namespace

std::string EventCursor::encode(bool descending) const {
  return pipeline::base64url_encode(std::string(kCursorVersion) + ":" + (descending ? "d" : "a") +
                                    ":" + std::to_string(ts_micros) + ":" +
                                    std::to_string(stream_seq) + ":" + std::to_string(id) + ":" +
                                    std::to_string(snapshot_id));
}

std::optional<EventCursor> EventCursor::decode(const std::string& token, bool descending) {
  const auto text = pipeline::base64url_decode(token);
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
      seq.ptr != begin + token.size() || position.created < 0 ||
      // Stream sequences are PostgreSQL bigints: above INT64_MAX no event
      // can be at or after it, and the bound would wrap negative.
      position.seq > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return std::nullopt;
  }
  return position;
}

}  // namespace ingest
