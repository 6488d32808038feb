#include "pipeline/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>
#include <cstdio>
#include <memory>

#include "pipeline/settings.hpp"

namespace pipeline {

namespace {

// Appends `text` escaped for a JSON string.
void append_escaped(std::string& dest, std::string_view text) {
  for (const char c : text) {
    switch (c) {
      case '"':
        dest += "\\\"";
        break;
      case '\\':
        dest += "\\\\";
        break;
      case '\n':
        dest += "\\n";
        break;
      case '\t':
        dest += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          dest += escaped;
        } else {
          dest += c;
        }
    }
  }
}

bool is_key_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

// True when `text` at `at` is " key=": the start of the next pair.
bool starts_pair(std::string_view text, std::size_t at) {
  if (at >= text.size() || text[at] != ' ') return false;
  std::size_t i = at + 1;
  while (i < text.size() && is_key_char(text[i])) ++i;
  return i > at + 1 && i < text.size() && text[i] == '=';
}

// %j: the message as JSON fields (json_fields).
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& /*tm*/,
              spdlog::memory_buf_t& dest) override {
    const std::string fields =
        json_fields(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(fields.data(), fields.data() + fields.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

}  // namespace

std::string json_fields(std::string_view message) {
  std::string out;
  std::size_t i = 0;
  while (i < message.size()) {
    while (i < message.size() && message[i] == ' ') ++i;
    if (i == message.size()) break;
    const std::size_t key_start = i;
    while (i < message.size() && is_key_char(message[i])) ++i;
    if (i == key_start || i == message.size() || message[i] != '=') break;  // not key=value
    const std::string_view key = message.substr(key_start, i - key_start);
    ++i;
    std::string_view value;
    if (i < message.size() && message[i] == '"') {
      const std::size_t value_start = ++i;
      std::size_t end = value_start;
      while (true) {
        end = message.find('"', end);
        if (end == std::string_view::npos) break;
        if (end + 1 == message.size() || starts_pair(message, end + 1)) break;
        ++end;
      }
      if (end == std::string_view::npos) break;  // unterminated quote
      value = message.substr(value_start, end - value_start);
      i = end + 1;
    } else {
      const std::size_t value_start = i;
      while (i < message.size() && message[i] != ' ') ++i;
      value = message.substr(value_start, i - value_start);
    }
    out += ",\"";
    out += key;
    out += "\":\"";
    append_escaped(out, value);
    out += '"';
  }
  if (i < message.size() || out.empty()) {  // not all key=value pairs
    out = ",\"msg\":\"";
    append_escaped(out, message);
    out += '"';
  }
  return out;
}

void init_logging(const std::string& service, const std::string& level, const std::string& format) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    throw ConfigError("LOG_LEVEL: expected trace, debug, info, warn, error or off, got '" + level +
                      "'");
  }
  // Not registered by name, so setting up twice (tests) is harmless.
  auto logger =
      std::make_shared<spdlog::logger>(service, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonMessageFlag>('j').set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","service":"%n"%j})");
    logger->set_formatter(std::move(formatter));
  } else if (format == "text") {
    logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%fZ level=%l service=%n %v",
                        spdlog::pattern_time_type::utc);
  } else {
    throw ConfigError("LOG_FORMAT: expected text or json, got '" + format + "'");
  }
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

}  // namespace pipeline
