#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

namespace ingest {

/// Where a stored event sits in the order subscriptions deliver: its stream's
/// incarnation (creation time, nanoseconds) and its stream sequence. Every
/// event at or below the settled bound (the durable consumer's ack floor) is
/// stored or dropped for good, so a walk in this order never sees a later
/// commit fill a hole behind it.
struct EventPosition {
  std::int64_t created = 0;
  std::uint64_t seq = 0;

  friend bool operator<(const EventPosition& a, const EventPosition& b) {
    return std::tie(a.created, a.seq) < std::tie(b.created, b.seq);
  }
  friend bool operator<=(const EventPosition& a, const EventPosition& b) { return !(b < a); }
  friend bool operator==(const EventPosition& a, const EventPosition& b) {
    return a.created == b.created && a.seq == b.seq;
  }
  friend bool operator!=(const EventPosition& a, const EventPosition& b) { return !(a == b); }

  /// The SSE id / resume cursor: "<created>-<seq>" in decimal.
  std::string token() const;
  /// Parses a token(); nullopt when it is not one.
  static std::optional<EventPosition> parse(std::string_view token);
};

}  // namespace ingest
