#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "http/message.hpp"
#include "ingest/publish_service.hpp"

namespace ingest {

/// Reads a POST /publish request for PublishService: undoes its
/// Content-Encoding (gzip, deflate; the inflated body capped at
/// `max_body_bytes`, INGEST_MAX_BODY_BYTES) and finds its format from its
/// headers:
///   application/cloudevents+json        a structured CloudEvent
///   application/cloudevents-batch+json  a CloudEvents batch
///   any ce- header                      a binary-mode CloudEvent (the body: JSON data)
///   application/x-ndjson                one event per line
///   JSON (as acceptable_content_type)   one event, an array, or {"events": [...]}
/// Returns the answer when the request cannot be read (415 for a type or
/// coding not taken, 413 for a body that inflates past the cap, 400 for a
/// corrupt one), else fills `input`, whose body views `request.body` (no
/// copy) or `*decoded`; both must outlive its use.
std::optional<http::Response> read_publish_request(const http::Request& request,
                                                   std::size_t max_body_bytes, std::string* decoded,
                                                   PublishInput* input);

/// Every Content-Encoding field of `request` as one list (RFC 9110 §5.3:
/// repeated fields are one list), so that a second field is never overlooked.
std::string content_codings(const http::Request& request);

/// `body` without a UTF-8 byte order mark at its start (Windows tools write
/// one; RFC 8259 §8.1 lets a parser ignore it). The one place a BOM is
/// dropped: the JSON readers refuse one, so that no second reading of the
/// text can see it otherwise.
std::string_view without_bom(std::string_view body);

/// True for the Content-Types a native JSON body may come with:
/// application/json, structured +json types, none at all, and
/// application/x-www-form-urlencoded (curl -d's default).
bool acceptable_content_type(std::string_view header);

}  // namespace ingest
