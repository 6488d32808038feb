#include "subscriptions/subscribe_params.hpp"

#include "pipeline/timestamp.hpp"

namespace ingest {

std::optional<SubscribeRequest> parse_subscribe_request(
    const std::function<std::optional<std::string>(const std::string&)>& params,
    std::string_view last_event_id, std::size_t max_field_length, std::string* error,
    bool accepts_cloudevents) {
  SubscribeRequest request;
  request.cloudevents = accepts_cloudevents;
  if (const auto format = params("format")) {
    if (*format != "json" && *format != "cloudevents") {
      *error = "format must be json or cloudevents";
      return std::nullopt;
    }
    request.cloudevents = *format == "cloudevents";
  }
  if (const auto topic = params("topic")) {
    auto pattern = TopicPattern::parse(*topic, max_field_length, error);
    if (!pattern) return std::nullopt;
    request.pattern = std::move(*pattern);
  }
  const auto resume = [&](std::string_view token, const char* what) {
    const auto position = EventPosition::parse(token);
    if (!position) {
      *error = std::string(what) + ": not an event id this server gave";
      return false;
    }
    request.start.kind = SubscriptionStart::Kind::kAfter;
    request.start.after = *position;
    return true;
  };
  const auto after = params("after");
  const auto since = params("since");
  if (!last_event_id.empty()) {
    if (!resume(last_event_id, "Last-Event-ID")) return std::nullopt;
  } else if (after) {
    if (!resume(*after, "after")) return std::nullopt;
  } else if (since) {
    std::string why;
    const auto time = pipeline::parse_rfc3339(*since, &why);
    if (!time) {
      *error = "since: " + why;
      return std::nullopt;
    }
    request.start.kind = SubscriptionStart::Kind::kSince;
    request.start.since_micros = time->micros_since_epoch;
  }
  return request;
}

}  // namespace ingest
