#pragma once

// The rules of one event, shared by the body formats of POST /publish (JSON,
// NDJSON, CloudEvents): each format finds its fields, these rules judge them
// alike, and the error names the field as the format calls it.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "json_layout.hpp"
#include "pipeline/event.hpp"

namespace pipeline::rules {

using nlohmann::json;

/// What a topic must look like, as an error's rule.
inline constexpr const char* kTopicRule =
    "must be characters of [A-Za-z0-9._-] with no empty dot-separated part";

/// True for well-formed UTF-8 with no control character (C0, DEL, C1);
/// `code_points` gets its length.
bool printable_utf8(std::string_view text, std::size_t* code_points);

/// The rule `text` breaks as a short text field (printable, 1..max_length
/// characters), or "".
std::string text_value_rule(std::string_view text, std::size_t max_length);

/// The rule member `name` of `object` breaks as a required short text field,
/// or "" (and `out` set).
std::string text_rule(const json& object, const char* name, std::size_t max_length,
                      std::string* out);

/// The rule a payload value breaks (a JSON object within max_json_depth and
/// max_payload_bytes, no U+0000), or "" and `payload_json` set: to
/// `exact_text` when known (so that numbers stay exactly as sent), else to
/// the value serialised again.
std::string payload_rule(const json& value, std::optional<std::string_view> exact_text,
                         const ValidationLimits& limits, std::string* payload_json);

/// `verdict` rejected: `field` for the metrics, `name` (the field as the
/// body's format calls it) in the error and as its attribute.
EventVerdict reject(EventVerdict verdict, EventField field, std::string_view name,
                    const std::string& rule);

/// Nesting depth of a JSON text, measured without building it; stops early
/// past `limit`.
std::size_t text_depth(std::string_view text, std::size_t limit);

/// Parses one JSON text whose depth is at most `max_depth` (checked first,
/// without parsing). Numbers beyond a double are read as 0 (the exact text
/// keeps them). nullopt and `error` set when it is not such a text.
std::optional<BodyError> body_depth_error(std::string_view text, std::size_t max_depth);
std::optional<json> parse_json_text(std::string_view text, std::size_t max_depth, BodyError* error);

/// The native event object `element` (index `index` of its request),
/// validated with its layout from scan_body_layout.
EventVerdict validate_event(std::size_t index, const json& element,
                            const BodyLayout::EventLayout& layout, const ValidationLimits& limits);

}  // namespace pipeline::rules
