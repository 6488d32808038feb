#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pipeline {

/// What a second, lean pass over a publish body finds that the JSON parser
/// (nlohmann) does not keep or does not refuse: the exact text of each
/// event's payload (so that numbers stay exactly as sent: PostgreSQL's jsonb
/// holds arbitrary precision, a double does not), duplicate member names
/// (refused, RFC 7493), and numbers PostgreSQL's numeric cannot hold exactly
/// (-0, or beyond its 131072 digits before the point or 16383 after).
/// Only for a text the parser accepted. Never throws.
struct BodyLayout {
  /// For one event object: its payload's exact text, and the first problem
  /// inside it ("" when none).
  struct EventLayout {
    std::optional<std::string_view> payload;
    std::string problem;              ///< the rule broken, "" when none
    bool problem_in_payload = false;  ///< a number of the payload, not the event's shape
  };
  /// Events by index when the body is an array or {"events": [...]}.
  std::map<std::size_t, EventLayout> events;
  /// The root object read as one event.
  EventLayout root_event;
  /// A problem of the envelope itself (a duplicate "events").
  std::string envelope_problem;
};

/// `payload_member` names the member whose exact text is kept: "payload" in
/// a native event, "data" in a CloudEvent.
BodyLayout scan_body_layout(std::string_view text, std::string_view payload_member = "payload");

/// The first problem (as in EventLayout::problem) anywhere in the JSON text
/// `text`, read as one value; "" when none.
std::string value_problem(std::string_view text);

/// `text` with each number a double cannot hold (1e400: the JSON parser
/// refuses it, PostgreSQL's numeric does not) written as 0, so that the
/// parser can read the structure; nullopt when there is none. The numbers
/// themselves are judged, and kept, by scan_body_layout on the original.
std::optional<std::string> without_overflowing_numbers(std::string_view text);

}  // namespace pipeline
