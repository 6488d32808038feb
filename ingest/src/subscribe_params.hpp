#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "subscription_hub.hpp"
#include "topic_pattern.hpp"

namespace ingest {

/// What GET /subscribe asks for.
struct SubscribeRequest {
  TopicPattern pattern;
  SubscriptionStart start;
};

/// Reads GET /subscribe's parameters: `topic` (a topic or pattern),
/// `since` (RFC 3339), `after` (a cursor) and the Last-Event-ID header that
/// EventSource sends on reconnect. Where it starts: Last-Event-ID, else
/// `after`, else `since`, else now. Sets `error` (naming the parameter)
/// when one is wrong.
std::optional<SubscribeRequest> parse_subscribe_request(
    const std::function<std::optional<std::string>(const std::string&)>& params,
    std::string_view last_event_id, std::size_t max_field_length, std::string* error);

}  // namespace ingest
