#include "json_layout.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <set>
#include <vector>

#include <utf8.h>

namespace pipeline {
namespace {

// PostgreSQL's numeric: up to 131072 digits before the decimal point and
// 16383 after.
constexpr std::int64_t kMaxDigitsBefore = 131072;
constexpr std::int64_t kMaxDigitsAfter = 16383;

class Skimmer {
 public:
  explicit Skimmer(std::string_view text, std::string_view payload_member = "payload")
      : text_(text), payload_member_(payload_member) {}

  // The first problem of the text read as one value.
  std::string whole_value() {
    std::string problem;
    value(&problem);
    return problem;
  }

  BodyLayout run() {
    skip_ws();
    if (peek() == '[') {
      ++pos_;
      std::size_t index = 0;
      skip_ws();
      if (peek() == ']') return std::move(layout_);
      while (true) {
        skip_ws();
        event_value(&layout_.events[index++]);
        skip_ws();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        break;
      }
    } else if (peek() == '{') {
      root_object();
    }
    return std::move(layout_);
  }

 private:
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  static void note(std::string* problem, std::string message) {
    if (problem != nullptr && problem->empty()) *problem = std::move(message);
  }

  // A string at pos_ (the opening quote), decoded (for member names).
  std::string string() {
    std::string out;
    ++pos_;  // "
    while (pos_ < text_.size() && text_[pos_] != '"') {
      if (text_[pos_] != '\\') {
        out += text_[pos_++];
        continue;
      }
      ++pos_;
      const char escape = peek();
      ++pos_;
      switch (escape) {
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          std::uint32_t code = hex4();
          if (code >= 0xD800 && code <= 0xDBFF && peek() == '\\' && pos_ + 1 < text_.size() &&
              text_[pos_ + 1] == 'u') {
            pos_ += 2;
            const std::uint32_t low = hex4();
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          }
          // nlohmann's parser has already refused lone surrogates.
          utf8::unchecked::append(code, std::back_inserter(out));
          break;
        }
        default:
          out += escape;
          break;  // " \ /
      }
    }
    ++pos_;  // "
    return out;
  }

  std::uint32_t hex4() {
    std::uint32_t value = 0;
    for (int i = 0; i < 4 && pos_ < text_.size(); ++i, ++pos_) {
      const char c = text_[pos_];
      value = value * 16 + static_cast<std::uint32_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return value;
  }

  // A number at pos_: checks that PostgreSQL's numeric holds it exactly.
  void number(std::string* problem) {
    const std::size_t start = pos_;
    const bool negative = peek() == '-';
    if (negative) ++pos_;
    std::string digits;  // integer and fraction digits, in order
    std::int64_t fraction_digits = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') digits += text_[pos_++];
    if (peek() == '.') {
      ++pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
        digits += text_[pos_++];
        ++fraction_digits;
      }
    }
    std::int64_t exponent = 0;
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      bool exponent_negative = false;
      if (peek() == '+' || peek() == '-') exponent_negative = text_[pos_++] == '-';
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
        exponent = std::min<std::int64_t>(exponent * 10 + (text_[pos_++] - '0'), 1'000'000'000);
      }
      if (exponent_negative) exponent = -exponent;
    }
    const std::string_view literal = text_.substr(start, pos_ - start);
    const auto first = digits.find_first_not_of('0');
    if (first == std::string::npos) {
      if (negative) {
        note(problem, "number " + std::string(literal) +
                          " cannot be stored exactly (PostgreSQL's jsonb has no negative zero)");
      }
      return;
    }
    const auto last = digits.find_last_not_of('0');
    // value = significant digits x 10^scale
    const std::int64_t significant = static_cast<std::int64_t>(last - first + 1);
    const std::int64_t scale =
        exponent - fraction_digits + static_cast<std::int64_t>(digits.size() - 1 - last);
    const std::int64_t after = std::max<std::int64_t>(0, -scale);
    const std::int64_t before = std::max<std::int64_t>(0, significant + scale);
    if (after > kMaxDigitsAfter || before > kMaxDigitsBefore) {
      note(problem, "number " + std::string(literal.substr(0, 40)) +
                        " cannot be stored exactly (PostgreSQL's numeric holds up to 131072 "
                        "digits before the point and 16383 after)");
    }
  }

  // Any value; problems go to `problem`.
  void value(std::string* problem) {
    skip_ws();
    const char c = peek();
    if (c == '{') {
      object(problem);
    } else if (c == '[') {
      ++pos_;
      skip_ws();
      if (peek() == ']') {
        ++pos_;
        return;
      }
      while (true) {
        value(problem);
        skip_ws();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        ++pos_;  // ]
        return;
      }
    } else if (c == '"') {
      string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      number(problem);
    } else {
      while (pos_ < text_.size() && std::isalpha(static_cast<unsigned char>(text_[pos_])) != 0) {
        ++pos_;  // true, false, null
      }
    }
  }

  // An object at pos_; each member name once. For an event object
  // (`event` set), its "payload" member's exact text and problems go there.
  // The root object (`root`) is also read as the envelope: its "events"
  // array's elements are events of their own, and a repeated name there is
  // the envelope's problem too.
  void object(std::string* problem, BodyLayout::EventLayout* event = nullptr, bool root = false) {
    ++pos_;  // {
    std::set<std::string> names;
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return;
    }
    while (true) {
      skip_ws();
      std::string name = string();
      if (!names.insert(name).second) {
        const std::string message = "duplicate member name \"" + name.substr(0, 64) +
                                    "\" (each name once per object, RFC 7493)";
        note(problem, message);
        if (root) note(&layout_.envelope_problem, message);
      }
      skip_ws();
      ++pos_;  // :
      skip_ws();
      member(name, problem, event, root);
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      ++pos_;  // }
      return;
    }
  }

  // The value of member `name` of an object (see object()).
  void member(const std::string& name, std::string* problem, BodyLayout::EventLayout* event,
              bool root) {
    const std::size_t start = pos_;
    if (root && name == "events" && peek() == '[') {
      ++pos_;
      std::size_t index = 0;
      skip_ws();
      while (peek() != ']') {
        BodyLayout::EventLayout& element = layout_.events[index++];
        event_value(&element);
        note(problem, element.problem);
        skip_ws();
        if (peek() == ',') ++pos_;
        skip_ws();
      }
      ++pos_;  // ]
    } else if (event != nullptr && name == payload_member_) {
      std::string payload_problem;
      value(&payload_problem);
      if (!payload_problem.empty() && problem->empty()) {
        *problem = std::move(payload_problem);
        event->problem_in_payload = true;
      }
    } else {
      value(problem);
    }
    if (event != nullptr && name == payload_member_) {
      event->payload = text_.substr(start, pos_ - start);
    }
  }

  // One event: an object (anything else is judged by the validator).
  void event_value(BodyLayout::EventLayout* event) {
    skip_ws();
    if (peek() == '{') {
      object(&event->problem, event);
    } else {
      value(&event->problem);
    }
  }

  // The root object: one event, or the envelope {"events": [...]}. Both
  // readings are kept; the validator knows which applies.
  void root_object() { object(&layout_.root_event.problem, &layout_.root_event, true); }

  std::string_view text_;
  std::string_view payload_member_;
  std::size_t pos_ = 0;
  BodyLayout layout_;
};

}  // namespace

BodyLayout scan_body_layout(std::string_view text, std::string_view payload_member) {
  return Skimmer(text, payload_member).run();
}

std::string value_problem(std::string_view text) { return Skimmer(text).whole_value(); }

std::optional<std::string> without_overflowing_numbers(std::string_view text) {
  std::string out;
  bool changed = false;
  std::size_t copied = 0;
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '"') {  // skip a string, escapes included
      ++i;
      while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
      ++i;
      continue;
    }
    if (c != '-' && (c < '0' || c > '9')) {
      ++i;
      continue;
    }
    const std::size_t start = i;
    while (i < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[i])) != 0 || text[i] == '-' ||
            text[i] == '+' || text[i] == '.' || text[i] == 'e' || text[i] == 'E')) {
      ++i;
    }
    const std::string literal(text.substr(start, i - start));
    const double value = std::strtod(literal.c_str(), nullptr);
    if (std::isinf(value)) {
      out.append(text.substr(copied, start - copied));
      out += '0';
      copied = i;
      changed = true;
    }
  }
  if (!changed) return std::nullopt;
  out.append(text.substr(copied));
  return out;
}

}  // namespace pipeline
