// NDJSON bodies (application/x-ndjson): one event per line, each judged on
// its own, a line that is not JSON included.
#include <algorithm>
#include <vector>

#include "event_rules.hpp"
#include "json_layout.hpp"
#include "pipeline/event.hpp"

namespace pipeline {
namespace {

struct Line {
  std::size_t number;  // 1-based, blank lines counted
  std::string_view text;
};

std::string_view trimmed(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
}

// The lines that hold something; stops past `max` of them.
std::vector<Line> event_lines(std::string_view body, std::size_t max) {
  std::vector<Line> lines;
  std::size_t number = 0;
  std::size_t pos = 0;
  while (pos <= body.size() && lines.size() <= max) {
    const std::size_t end = std::min(body.find('\n', pos), body.size());
    ++number;
    const std::string_view text = trimmed(body.substr(pos, end - pos));
    if (!text.empty()) lines.push_back({number, text});
    pos = end + 1;
  }
  return lines;
}

EventVerdict line_verdict(std::size_t index, const Line& line, const ValidationLimits& limits) {
  const std::string where = "line " + std::to_string(line.number) + ": ";
  BodyError error;
  const auto document = rules::parse_json_text(line.text, limits.max_body_depth, &error);
  EventVerdict verdict;
  if (!document) {
    verdict.index = index;
    verdict.field = EventField::kEvent;
    verdict.attribute = field_name(EventField::kEvent);
    verdict.error = where + error.message;
    return verdict;
  }
  const BodyLayout layout = scan_body_layout(line.text);
  verdict = rules::validate_event(index, *document, layout.root_event, limits);
  if (!verdict.event) verdict.error = where + verdict.error;
  return verdict;
}

}  // namespace

PublishBody parse_ndjson_body(std::string_view body, const ValidationLimits& limits) {
  PublishBody result;
  const std::vector<Line> lines = event_lines(body, limits.max_events_per_request);
  if (lines.empty()) {
    result.error = BodyError{BodyErrorKind::kWrongShape, "no events in the request"};
    return result;
  }
  if (lines.size() > limits.max_events_per_request) {
    result.error = BodyError{BodyErrorKind::kTooManyEvents,
                             "more events than max_events_per_request (" +
                                 std::to_string(limits.max_events_per_request) + ")"};
    return result;
  }
  result.verdicts.reserve(lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    result.verdicts.push_back(line_verdict(i, lines[i], limits));
  }
  return result;
}

}  // namespace pipeline
