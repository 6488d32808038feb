#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "subscriptions/subscription_hub.hpp"
#include "subscriptions/topic_pattern.hpp"

namespace ingest {

/// What GET /subscribe asks for.
struct SubscribeRequest {
  TopicPattern pattern;
  SubscriptionStart start;
  bool cloudevents = false;  ///< each event's data a CloudEvent (format=cloudevents)
};

/// Reads GET /subscribe's parameters: `topic` (a topic or pattern),
/// `since` (RFC 3339), `after` (a cursor) and the Last-Event-ID header that
/// EventSource sends on reconnect, and `format` (json, the default, or
/// cloudevents; `accepts_cloudevents`, from the Accept header, asks for the
/// latter when `format` is absent). Where it starts: Last-Event-ID, else
/// `after`, else `since`, else now. Sets `error` (naming the parameter)
/// when one is wrong.
std::optional<SubscribeRequest> parse_subscribe_request(
    const std::function<std::optional<std::string>(const std::string&)>& params,
    std::string_view last_event_id, std::size_t max_field_length, std::string* error,
    bool accepts_cloudevents = false);

}  // namespace ingest
