#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pipeline {

/// One event, validated and normalised: the timestamp is UTC RFC 3339 and the
/// payload is a serialised JSON object.
struct Event {
  std::string topic;
  std::string event_id;
  std::string timestamp;  ///< "YYYY-MM-DDTHH:MM:SS.ffffffZ"
  std::string source;
  std::string payload_json = "{}";

  /// The broker's de-duplication key, "<topic>:<event_id>". A topic never
  /// contains ':', so two different events never share a key.
  std::string message_id() const { return topic + ":" + event_id; }
};

/// Input limits of POST /publish. Each is a named setting with a default; the
/// error for a breach names the setting.
struct ValidationLimits {
  std::size_t max_field_length = 255;  ///< max_field_length: topic, event_id, source (characters)
  std::size_t max_payload_bytes =
      std::size_t{64} * 1024;       ///< max_payload_bytes: serialised payload
  std::size_t max_json_depth = 32;  ///< max_json_depth: nesting inside a payload
  /// max_body_depth: nesting of the whole body, checked before parsing so a
  /// hostile body never builds a deep tree. Above max_json_depth + 3 (the
  /// envelope, the event and the payload's own levels), so that a payload
  /// over max_json_depth is rejected alone and its neighbours are kept.
  std::size_t max_body_depth = 128;
  std::size_t max_events_per_request = 1000;  ///< max_events_per_request
};

/// The part of an event a rule is about.
enum class EventField { kEvent, kTopic, kEventId, kTimestamp, kSource, kPayload };
/// Its name in the API and in metric labels: event, topic, event_id, ...
const char* field_name(EventField field);

/// The verdict on one element of a publish request.
struct EventVerdict {
  std::size_t index = 0;
  std::optional<Event> event;             ///< set when valid
  std::string topic;                      ///< as sent (if it was a string), for the response
  std::string event_id;                   ///< as sent (if it was a string), for the response
  EventField field = EventField::kEvent;  ///< when invalid: the part whose rule was broken
  /// When invalid: that part as the body's format names it ("topic" in a
  /// native event, "type" in a CloudEvent), the first word of `error`.
  std::string attribute;
  std::string error;  ///< "attribute: rule" when invalid
};

/// Why a whole request body was refused.
enum class BodyErrorKind { kMalformedJson, kWrongShape, kTooManyEvents, kTooDeep, kTooLarge };

struct BodyError {
  BodyErrorKind kind;
  std::string message;
};

/// The result of reading a publish body: either a body error, or one verdict
/// per event in request order.
struct PublishBody {
  std::optional<BodyError> error;
  std::vector<EventVerdict> verdicts;
};

/// Parses a POST /publish body: a single event object, a JSON array of events,
/// or {"events": [...]}. Each event is validated on its own, so one bad event
/// never hides its valid neighbours. Never throws.
PublishBody parse_publish_body(std::string_view body, const ValidationLimits& limits);

/// Parses an NDJSON body (application/x-ndjson): one native event object per
/// line; blank lines are skipped, a line may end in CRLF. Each line is judged
/// on its own, a malformed one included (its error starts "line N: "), so a
/// bad line never costs its neighbours. `index` counts the events (the
/// non-blank lines) from 0. Body errors: no events, or more than
/// max_events_per_request. Never throws.
PublishBody parse_ndjson_body(std::string_view body, const ValidationLimits& limits);

/// An event as a protocol's decoder mapped it (OTLP, Elasticsearch bulk,
/// Loki push: each has its own fields), before the rules judge it. Each
/// name in `names` is what the protocol calls that part, for the error.
struct MappedEvent {
  std::string topic;
  std::string event_id;
  std::string source;
  std::int64_t timestamp_micros = 0;  ///< UTC microseconds since the epoch
  std::string payload_json;           ///< a serialised JSON object
  struct Names {
    std::string topic = "topic";
    std::string event_id = "event_id";
    std::string timestamp = "timestamp";
    std::string source = "source";
    std::string payload = "payload";
  } names;
};

/// Judges a mapped event by the rules of a native one (topic, event_id,
/// source, timestamp in range, payload an object within max_payload_bytes
/// and max_json_depth, no U+0000): the verdict of element `index`.
EventVerdict judge_event(std::size_t index, MappedEvent mapped, const ValidationLimits& limits);

/// The rule a JSON text breaks as a payload (an object within
/// max_payload_bytes and max_json_depth, each member name once, numbers
/// PostgreSQL's jsonb can hold, no U+0000), or "". For a text a JSON parser
/// accepted (an Elasticsearch document, say), kept exactly as sent.
std::string json_object_rule(std::string_view text, const ValidationLimits& limits);

/// A JSON body nested deeper than `max_depth` (INGEST_MAX_BODY_DEPTH), as
/// the error every reader gives; measured without parsing, before a parser
/// builds anything.
std::optional<BodyError> body_depth_error(std::string_view text, std::size_t max_depth);

/// `name` as a topic: each character outside [A-Za-z0-9._-] written as
/// '_', and an empty dot-separated part as '_' ("unknown_service:node" ->
/// "unknown_service_node"). What a protocol's service, index or label value
/// becomes; the length rule still applies.
std::string topic_from(std::string_view name);

/// Serialises a valid event for the broker (a JSON object).
std::string encode_event(const Event& event);

/// Decodes a broker message body written by encode_event and re-validates it
/// with default limits (the processor trusts nothing). Returns nullopt and
/// fills `why` on a message that no retry can fix. Never throws.
std::optional<Event> decode_event(std::string_view data, std::string* why);

/// True when `topic` can be a topic: 1..max characters of [A-Za-z0-9._-]
/// with no empty dot-separated token.
bool is_valid_topic(std::string_view topic, std::size_t max_length = 255);

/// True when `text` can be an event_id or source: 1..max characters of
/// printable UTF-8.
bool is_valid_text(std::string_view text, std::size_t max_length = 255);

}  // namespace pipeline
