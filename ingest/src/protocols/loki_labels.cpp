// The label set of a Loki stream in Prometheus's text form: {a="b", c='d'},
// names plain or quoted, values in double quotes, single quotes (with Go's
// escapes) or backticks (raw).
#include <algorithm>
#include <cctype>

#include "protocols/loki.hpp"

namespace ingest::loki {
namespace {

class LabelReader {
 public:
  explicit LabelReader(std::string_view text) : text_(text) {}

  bool read(std::vector<std::pair<std::string, std::string>>* labels, std::string* error) {
    skip_space();
    std::string metric;
    if (at() != '{' && !identifier(&metric)) return fail(error, "a label set starts with {");
    if (!metric.empty()) labels->emplace_back("__name__", metric);
    skip_space();
    if (!take('{')) return fail(error, "a label set starts with {");
    skip_space();
    while (!take('}')) {
      std::string name;
      std::string value;
      if (!identifier(&name) && !quoted(&name)) return fail(error, "a label name was expected");
      skip_space();
      if (!take('=')) return fail(error, "'=' was expected after label " + name);
      skip_space();
      if (!quoted(&value)) return fail(error, "a quoted value was expected for label " + name);
      labels->emplace_back(std::move(name), std::move(value));
      skip_space();
      if (take(',')) {
        skip_space();
        continue;
      }
      if (at() != '}') return fail(error, "',' or '}' was expected");
    }
    skip_space();
    if (pos_ != text_.size()) return fail(error, "text after the label set");
    return true;
  }

 private:
  char at() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool take(char c) {
    if (at() != c) return false;
    ++pos_;
    return true;
  }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_])) != 0) {
      ++pos_;
    }
  }
  static bool fail(std::string* error, const std::string& why) {
    *error = "couldn't parse labels: " + why;
    return false;
  }
  bool identifier(std::string* out) {
    const std::size_t start = pos_;
    const auto first = [](char c) {
      return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
    };
    if (!first(at())) return false;
    while (first(at()) || std::isdigit(static_cast<unsigned char>(at()))) ++pos_;
    *out = std::string(text_.substr(start, pos_ - start));
    return true;
  }
  bool hex(std::size_t digits, std::uint32_t* value) {
    *value = 0;
    for (std::size_t i = 0; i < digits; ++i) {
      const char c = at();
      if (std::isxdigit(static_cast<unsigned char>(c)) == 0) return false;
      *value = *value * 16 + static_cast<std::uint32_t>(std::isdigit(static_cast<unsigned char>(c))
                                                            ? c - '0'
                                                            : (std::tolower(c) - 'a' + 10));
      ++pos_;
    }
    return true;
  }
  static void append_utf8(std::string* out, std::uint32_t code) {
    if (code < 0x80) {
      *out += static_cast<char>(code);
    } else if (code < 0x800) {
      *out += static_cast<char>(0xC0 | (code >> 6U));
      *out += static_cast<char>(0x80 | (code & 0x3FU));
    } else if (code < 0x10000) {
      *out += static_cast<char>(0xE0 | (code >> 12U));
      *out += static_cast<char>(0x80 | ((code >> 6U) & 0x3FU));
      *out += static_cast<char>(0x80 | (code & 0x3FU));
    } else {
      *out += static_cast<char>(0xF0 | (code >> 18U));
      *out += static_cast<char>(0x80 | ((code >> 12U) & 0x3FU));
      *out += static_cast<char>(0x80 | ((code >> 6U) & 0x3FU));
      *out += static_cast<char>(0x80 | (code & 0x3FU));
    }
  }
  bool escape(std::string* out, char quote) {
    const char c = at();
    ++pos_;
    std::uint32_t code = 0;
    switch (c) {
      case 'a':
        *out += '\a';
        return true;
      case 'b':
        *out += '\b';
        return true;
      case 'f':
        *out += '\f';
        return true;
      case 'n':
        *out += '\n';
        return true;
      case 'r':
        *out += '\r';
        return true;
      case 't':
        *out += '\t';
        return true;
      case 'v':
        *out += '\v';
        return true;
      case '\\':
        *out += '\\';
        return true;
      case 'x':
        if (!hex(2, &code)) return false;
        *out += static_cast<char>(code);
        return true;
      case 'u':
        if (!hex(4, &code)) return false;
        append_utf8(out, code);
        return true;
      case 'U':
        if (!hex(8, &code) || code > 0x10FFFF) return false;
        append_utf8(out, code);
        return true;
      default:
        if (c == quote) {
          *out += c;
          return true;
        }
        if (c >= '0' && c <= '7') {  // \ooo
          code = static_cast<std::uint32_t>(c - '0');
          for (int i = 0; i < 2; ++i) {
            if (at() < '0' || at() > '7') return false;
            code = code * 8 + static_cast<std::uint32_t>(at() - '0');
            ++pos_;
          }
          if (code > 255) return false;
          *out += static_cast<char>(code);
          return true;
        }
        return false;
    }
  }
  bool quoted(std::string* out) {
    const char quote = at();
    if (quote != '"' && quote != '\'' && quote != '`') return false;
    ++pos_;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == quote) {
        ++pos_;
        return true;
      }
      if (quote != '`' && c == '\\') {
        ++pos_;
        if (!escape(out, quote)) return false;
        continue;
      }
      if (quote != '`' && c == '\n') return false;
      *out += c;
      ++pos_;
    }
    return false;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

bool parse_labels(std::string_view text, std::vector<std::pair<std::string, std::string>>* labels,
                  std::string* error) {
  labels->clear();
  if (!LabelReader(text).read(labels, error)) return false;
  std::sort(labels->begin(), labels->end());
  for (std::size_t i = 1; i < labels->size(); ++i) {
    if ((*labels)[i].first == (*labels)[i - 1].first) {
      *error = "couldn't parse labels: label " + (*labels)[i].first + " given twice";
      return false;
    }
  }
  labels->erase(std::remove_if(labels->begin(), labels->end(),
                               [](const auto& label) { return label.second.empty(); }),
                labels->end());
  return true;
}

}  // namespace ingest::loki
