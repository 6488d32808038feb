#include "queries/event_queries.hpp"

#include <nlohmann/json.hpp>

#include "pipeline/event.hpp"
#include "pipeline/logging.hpp"
#include "pipeline/timestamp.hpp"

namespace ingest {
namespace {

// An optional RFC 3339 parameter; sets `error` when it is malformed.
std::optional<std::int64_t> timestamp_param(const EventQueryService::Params& params,
                                            const std::string& name, std::string* error) {
  const auto text = params(name);
  if (!text) return std::nullopt;
  std::string why;
  const auto parsed = pipeline::parse_rfc3339(*text, &why);
  if (!parsed) {
    *error = name + ": " + why;
    return std::nullopt;
  }
  return parsed->micros_since_epoch;
}

// A whole number from 1 to `max`, or nullopt.
std::optional<std::size_t> limit_param(const std::string& text, std::size_t max) {
  std::size_t used = 0;
  long long value = -1;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != text.size() || value < 1 || value > static_cast<long long>(max)) return std::nullopt;
  return static_cast<std::size_t>(value);
}

std::string page_json(const EventPage& page, bool descending) {
  std::string body = "{\"count\":" + std::to_string(page.count) + ",\"events\":";
  body += page.events_json;
  body += ",\"next_cursor\":";
  body += page.next ? nlohmann::json(page.next->encode(descending)).dump() : "null";
  body += '}';
  return body;
}

}  // namespace

std::optional<EventQuery> EventQueryService::parse(const Params& params, std::string* error) const {
  EventQuery query;
  query.limit = kDefaultLimit;
  query.topic = params("topic");
  query.source = params("source");
  if (query.topic && !pipeline::is_valid_topic(*query.topic, max_field_length_)) {
    *error = "topic: must be characters of [A-Za-z0-9._-] with no empty dot-separated part";
  }
  if (query.source && !pipeline::is_valid_text(*query.source, max_field_length_)) {
    *error = "source: must be 1 to max_field_length printable UTF-8 characters";
  }
  query.since_micros = timestamp_param(params, "since", error);
  query.until_micros = timestamp_param(params, "until", error);
  if (const auto order = params("order")) {
    if (*order == "desc") {
      query.descending = true;
    } else if (*order != "asc") {
      *error = "order must be asc or desc";
    }
  }
  if (const auto limit = params("limit")) {
    const auto value = limit_param(*limit, kMaxLimit);
    if (!value) *error = "limit must be a whole number from 1 to " + std::to_string(kMaxLimit);
    query.limit = value.value_or(kDefaultLimit);
  }
  if (const auto format = params("format")) {
    if (*format == "cloudevents") {
      query.cloudevents = true;
    } else if (*format != "json") {
      *error = "format must be json or cloudevents";
    }
  }
  if (const auto cursor = params("cursor")) {
    query.cursor = EventCursor::decode(*cursor, query.descending);
    if (!query.cursor) *error = "cursor is not one this server gave for this order";
  }
  if (!error->empty()) return std::nullopt;
  return query;
}

EventQueryResult EventQueryService::run(const Params& params) {
  EventQueryResult result;
  const auto query = parse(params, &result.error);
  if (!query) {
    result.kind = EventQueryResult::Kind::kInvalid;
    return result;
  }
  try {
    if (!reader_.schema_ready()) {
      result.kind = EventQueryResult::Kind::kNoSchema;
      result.error = "no events table yet: the processor creates it when it first starts";
      return result;
    }
    result.body = page_json(reader_.events(*query), query->descending);
  } catch (const std::exception& e) {
    pipeline::log::warn("events_query_failed", {{"error", pipeline::log::first_line(e.what())}});
    result.kind = EventQueryResult::Kind::kUnavailable;
    result.error = "database unavailable";
  }
  return result;
}

}  // namespace ingest
