#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

namespace pipeline {

/// Sets up logging for a service: one line per event of interest, to stderr,
/// at `level` (trace, debug, info, warn, error, off), as key=value text
/// (`format` "text": `ts=... level=... service=... event=x key=value`) or
/// JSON lines ("json": {"ts","level","service","event", then the fields}).
/// Throws ConfigError on an unknown level or format.
void init_logging(const std::string& service, const std::string& level,
                  const std::string& format = "text");

namespace log {

/// One field of a log line: a name and its value, a number, a boolean or
/// text. A line is made of fields, never parsed back out of text.
class Field {
 public:
  enum class Kind { kText, kNumber, kBoolean };

  Field(std::string_view key, std::string_view value)
      : key_(key), value_(value), kind_(Kind::kText) {}
  Field(std::string_view key, const std::string& value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, const char* value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, bool value)
      : key_(key), value_(value ? "true" : "false"), kind_(Kind::kBoolean) {}
  template <typename T,
            std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Field(std::string_view key, T value)
      : key_(key), value_(std::to_string(value)), kind_(Kind::kNumber) {}

  std::string_view key() const { return key_; }
  const std::string& value() const { return value_; }
  Kind kind() const { return kind_; }

 private:
  std::string_view key_;
  std::string value_;
  Kind kind_;
};

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kCritical };

/// True when a line at `level` would be written (to skip building fields).
bool enabled(Level level);
/// Writes one line: the event's name, then the fields, in the format set up
/// by init_logging.
void write(Level level, std::string_view event, std::initializer_list<Field> fields);

inline void debug(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(Level::kDebug, event, fields);
}
inline void info(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(Level::kInfo, event, fields);
}
inline void warn(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(Level::kWarn, event, fields);
}
inline void error(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(Level::kError, event, fields);
}
inline void critical(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(Level::kCritical, event, fields);
}

/// The message part of a line: `event=x key=value key="a b"` (text), or
/// `,"event":"x","key":...` to follow the line's first JSON fields (json).
std::string render_text(std::string_view event, std::initializer_list<Field> fields);
std::string render_json(std::string_view event, std::initializer_list<Field> fields);

/// An error's text for a field: its first line (drivers add hints on more),
/// at most `limit` bytes.
std::string first_line(std::string_view text, std::size_t limit = 300);

}  // namespace log
}  // namespace pipeline
