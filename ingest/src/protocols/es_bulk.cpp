// Elasticsearch bulk: NDJSON action and document lines read into items and
// verdicts (es_bulk_reply.cpp renders the answer).
#include "protocols/es_bulk.hpp"

#include <openssl/sha.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "pipeline/timestamp.hpp"

namespace ingest::bulk {
namespace {

using nlohmann::json;

std::string sha256_hex(std::string_view text, std::size_t digits) {
  static constexpr char kDigits[] = "0123456789abcdef";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::string out;
  for (std::size_t i = 0; i < digits / 2 && i < sizeof digest; ++i) {
    out += kDigits[digest[i] >> 4U];
    out += kDigits[digest[i] & 15U];
  }
  return out;
}

// The lines of the body without their line ends, blank ones skipped.
std::vector<std::string_view> lines_of(std::string_view body) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start < body.size()) {
    std::size_t end = body.find('\n', start);
    if (end == std::string_view::npos) end = body.size();
    std::string_view line = body.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") != std::string_view::npos) lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

// ES dates: RFC 3339; a date-time without a zone (UTC); a date; epoch millis.
std::optional<std::int64_t> parse_date(const json& value) {
  if (value.is_number()) {
    const double millis = value.get<double>();
    if (!std::isfinite(millis)) return std::nullopt;
    return static_cast<std::int64_t>(std::floor(millis * 1000));
  }
  if (!value.is_string()) return std::nullopt;
  const auto& text = value.get_ref<const std::string&>();
  if (auto ts = pipeline::parse_rfc3339(text)) return ts->micros_since_epoch;
  if (text.size() == 10) {
    if (auto ts = pipeline::parse_rfc3339(text + "T00:00:00Z")) return ts->micros_since_epoch;
  }
  if (auto ts = pipeline::parse_rfc3339(text + "Z")) return ts->micros_since_epoch;
  std::int64_t millis = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), millis);
  if (error == std::errc() && end == text.data() + text.size() && !text.empty()) {
    return millis * 1000;
  }
  return std::nullopt;
}

// A dotted field: as one name first ("host.name": ..), then as a path.
const json* field(const json& document, const std::string& name) {
  if (const auto it = document.find(name); it != document.end()) return &*it;
  const json* at = &document;
  std::size_t start = 0;
  while (start <= name.size()) {
    const std::size_t dot = name.find('.', start);
    const std::string part = name.substr(start, dot == std::string::npos ? dot : dot - start);
    if (!at->is_object()) return nullptr;
    const auto it = at->find(part);
    if (it == at->end()) return nullptr;
    at = &*it;
    if (dot == std::string::npos) return at;
    start = dot + 1;
  }
  return nullptr;
}

// A parser callback that drops every top-level member but the times and the
// first part of each source field (with what they hold).
json::parser_callback_t read_members(const Settings& settings) {
  return [&settings](int depth, json::parse_event_t event, json& parsed) {
    if (event != json::parse_event_t::key || depth != 1) return true;
    const auto& key = parsed.get_ref<const std::string&>();
    if (key == "@timestamp" || key == "timestamp") return true;
    return std::any_of(
        settings.source_fields.begin(), settings.source_fields.end(), [&](const std::string& name) {
          return name == key || (name.size() > key.size() &&
                                 name.compare(0, key.size(), key) == 0 && name[key.size()] == '.');
        });
  };
}

std::string malformed(std::size_t line, const std::string& what) {
  return "Malformed action/metadata line [" + std::to_string(line) + "], " + what;
}

// The verdict of one create or index item's document.
pipeline::EventVerdict judge(std::size_t index, const Item& item, std::string_view text,
                             const Settings& settings, const pipeline::ValidationLimits& limits,
                             std::int64_t now_micros) {
  const auto refuse = [&](const std::string& rule) {
    pipeline::EventVerdict verdict;
    verdict.index = index;
    verdict.topic = item.index;
    verdict.event_id = item.id;
    verdict.field = pipeline::EventField::kPayload;
    verdict.attribute = "document";
    verdict.error = "document: " + rule;
    return verdict;
  };
  // The rules first (the depth among them, before a parser recurses); then
  // a parse that keeps only the members the mapping reads: the document
  // itself stays the text it came as.
  if (auto rule = pipeline::json_object_rule(text, limits); !rule.empty()) return refuse(rule);
  const json document = json::parse(text, read_members(settings), false);
  if (document.is_discarded()) return refuse("not JSON");
  pipeline::MappedEvent mapped;
  mapped.topic = pipeline::topic_from(item.index);
  mapped.source = "bulk";
  for (const std::string& name : settings.source_fields) {
    const json* value = field(document, name);
    if (value != nullptr && value->is_string() && !value->get_ref<const std::string&>().empty()) {
      mapped.source = value->get<std::string>();
      break;
    }
  }
  mapped.timestamp_micros = now_micros;
  for (const char* name : {"@timestamp", "timestamp"}) {
    const auto it = document.find(name);
    if (it == document.end()) continue;
    const auto micros = parse_date(*it);
    if (!micros) return refuse(std::string("failed to parse field [") + name + "] as a date");
    mapped.timestamp_micros = *micros;
    break;
  }
  mapped.payload_json = std::string(text);
  if (!item.id.empty() && item.id.size() <= limits.max_field_length) {
    mapped.event_id = item.id;
  } else if (!item.id.empty()) {
    mapped.event_id = "bulk-id-sha256-" + sha256_hex(item.id, 64);
  } else {
    std::string identity = item.index;
    identity += '\0';
    identity += text;
    mapped.event_id = "bulk-" + sha256_hex(identity, 32);
  }
  mapped.names.topic = "_index";
  mapped.names.event_id = "_id";
  mapped.names.timestamp = "@timestamp";
  mapped.names.source = settings.source_fields.empty() ? "host.name" : settings.source_fields[0];
  mapped.names.payload = "document";
  return pipeline::judge_event(index, std::move(mapped), limits);
}

// One action line: the item it announces, or why the request is malformed.
std::optional<std::string> read_action(std::string_view line, std::size_t number,
                                       std::string_view path_index, Item* item) {
  const json action = json::parse(line, nullptr, false);
  if (action.is_discarded() || !action.is_object()) {
    return malformed(number, "expected START_OBJECT");
  }
  if (action.size() != 1) return malformed(number, "expected one action");
  const std::string& name = action.begin().key();
  const json& meta = action.begin().value();
  if (name == "create") {
    item->action = Action::kCreate;
  } else if (name == "index") {
    item->action = Action::kIndex;
  } else if (name == "update") {
    item->action = Action::kUpdate;
  } else if (name == "delete") {
    item->action = Action::kDelete;
  } else {
    return malformed(number, "unknown action [" + name + "]");
  }
  if (!meta.is_object()) return malformed(number, "expected START_OBJECT or END_OBJECT");
  item->index = std::string(path_index);
  if (const auto it = meta.find("_index"); it != meta.end()) {
    if (!it->is_string()) return malformed(number, "expected a simple value for field [_index]");
    item->index = it->get<std::string>();
  }
  if (const auto it = meta.find("_id"); it != meta.end() && !it->is_null()) {
    if (it->is_string()) {
      item->id = it->get<std::string>();
    } else if (it->is_number_integer()) {
      item->id = it->dump();
    } else {
      return malformed(number, "expected a simple value for field [_id]");
    }
  }
  if (item->action == Action::kIndex) {
    if (const auto op = meta.find("op_type"); op != meta.end() && *op == "create") {
      item->action = Action::kCreate;
    }
  }
  return std::nullopt;
}

}  // namespace

Decoded decode(std::string_view body, std::string_view path_index, const Settings& settings,
               const pipeline::ValidationLimits& limits, std::int64_t now_micros) {
  Decoded decoded;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    decoded.error = "request body is required";
    return decoded;
  }
  if (body.back() != '\n') {
    decoded.error = "The bulk request must be terminated by a newline [\\n]";
    return decoded;
  }
  const std::vector<std::string_view> lines = lines_of(body);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    Item item;
    if (auto error = read_action(lines[i], i + 1, path_index, &item)) {
      decoded.error = *error;
      return decoded;
    }
    if (decoded.items.size() == limits.max_events_per_request) {
      decoded.too_many = true;
      return decoded;
    }
    const bool has_source = item.action != Action::kDelete;
    if (has_source && i + 1 >= lines.size()) {
      decoded.error = "Validation Failed: 1: the last action has no document line";
      return decoded;
    }
    const std::string_view source = has_source ? lines[++i] : std::string_view();
    if (item.action == Action::kUpdate || item.action == Action::kDelete) {
      item.error = item.action == Action::kUpdate
                       ? "action [update] is not supported: events are written once"
                       : "action [delete] is not supported: events expire by retention";
    } else if (item.index.empty()) {
      item.error = "index is missing (give _index, or POST /{index}/_bulk)";
    } else {
      item.verdict = decoded.body.verdicts.size();
      decoded.body.verdicts.push_back(
          judge(item.verdict, item, source, settings, limits, now_micros));
    }
    decoded.items.push_back(std::move(item));
  }
  return decoded;
}

}  // namespace ingest::bulk
