#pragma once

// CloudEvents 1.0 (https://cloudevents.io) on the event model: how a
// CloudEvent becomes an event (POST /publish, in the three modes of the HTTP
// binding) and how a stored event is shown as one (GET /events, and the
// subscription stream to come).
//
//   type    -> topic       (the topic rules apply: [A-Za-z0-9._-], dot-separated)
//   source  -> source
//   id      -> with source, the event_id: event_key(source, id)
//   time    -> timestamp   (optional: the time ingest read the event when absent)
//   data    -> payload     (a JSON object; absent or null: {})
//
// specversion must be "1.0". datacontenttype, when given, must be JSON;
// data_base64 (binary data) is refused. subject, dataschema and extension
// attributes are not stored.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pipeline/event.hpp"
#include "pipeline/timestamp.hpp"

namespace pipeline::cloudevents {

/// The event_id a CloudEvent is stored under. CloudEvents' identity is
/// (source, id): "consumers MAY assume that events with identical source and
/// id are duplicates". The key holds both, so that no two pairs share one:
/// "ce:<bytes of source>:<source>:<id>" (the length makes it unambiguous,
/// whatever characters source holds), or, when that is longer than
/// `max_length` characters, "ce-sha256:" and the SHA-256 of that text in 64
/// hex digits. Empty when even that does not fit in `max_length`.
std::string event_key(std::string_view source, std::string_view id, std::size_t max_length);

/// The CloudEvents id of a stored event: the id inside its event_id when
/// that is the readable key of (event.source, id), else the event_id itself
/// (an event published natively, or one keyed by its hash).
std::string id_of(const Event& event);

/// Appends a stored event as a structured-mode CloudEvent (JSON):
/// specversion, id (id_of), source, type (the topic), time (the timestamp),
/// datacontenttype "application/json" and data (the payload's text as it is).
void append_json(std::string& out, const Event& event);
std::string to_json(const Event& event);

/// A stored event as GET /events returns it natively (topic, event_id,
/// timestamp, source, payload, stored_at) rendered as append_json does, the
/// payload's text kept exactly; "" when `native` is not such an object.
/// Never throws.
std::string from_stored_json(std::string_view native);

/// True for a JSON media type: application/json, or any */*+json type
/// (parameters such as charset allowed); case-insensitive.
bool is_json_media_type(std::string_view content_type);

/// Reads a structured-mode body: one CloudEvent (application/cloudevents+json,
/// `batch` false) or a JSON array of them (application/cloudevents-batch+json).
/// Each event is judged on its own; errors name the CloudEvents attribute
/// ("type: is required"). An event without time gets `received`. Never throws.
PublishBody parse_structured(std::string_view body, bool batch, const ValidationLimits& limits,
                             UtcTimestamp received);

/// Reads a binary-mode CloudEvent: its attributes as the ce- headers carry
/// them (names without "ce-", in lower case; values percent-decoded), the
/// body its data (JSON; empty: no data). A repeated attribute is refused.
/// Never throws.
PublishBody parse_binary(const std::vector<std::pair<std::string, std::string>>& attributes,
                         std::string_view data, const ValidationLimits& limits,
                         UtcTimestamp received);

}  // namespace pipeline::cloudevents
