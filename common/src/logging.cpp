#include "pipeline/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>

#include "pipeline/json_text.hpp"
#include "pipeline/settings.hpp"

namespace pipeline {
namespace {

std::atomic<bool> json_format{false};

spdlog::level::level_enum to_spdlog(log::Level level) {
  switch (level) {
    case log::Level::kTrace:
      return spdlog::level::trace;
    case log::Level::kDebug:
      return spdlog::level::debug;
    case log::Level::kInfo:
      return spdlog::level::info;
    case log::Level::kWarn:
      return spdlog::level::warn;
    case log::Level::kError:
      return spdlog::level::err;
    case log::Level::kCritical:
      break;
  }
  return spdlog::level::critical;
}

// A text value goes in quotes when it has a space, a quote or an equals
// sign, or is empty; inside them, quotes and backslashes are escaped.
void append_text_value(std::string& out, std::string_view value) {
  const bool plain = !value.empty() && value.find_first_of(" \"=\\\t\n\r") == std::string::npos;
  if (plain) {
    out += value;
    return;
  }
  out += '"';
  for (const char c : value) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

namespace log {

std::string render_text(std::string_view event, std::initializer_list<Field> fields) {
  std::string out = "event=";
  append_text_value(out, event);
  for (const Field& field : fields) {
    out += ' ';
    out += field.key();
    out += '=';
    append_text_value(out, field.value());
  }
  return out;
}

std::string render_json(std::string_view event, std::initializer_list<Field> fields) {
  std::string out = ",\"event\":";
  append_json_string(out, event);
  for (const Field& field : fields) {
    out += ',';
    append_json_string(out, field.key());
    out += ':';
    if (field.kind() == Field::Kind::kText) {
      append_json_string(out, field.value());
    } else {
      out += field.value();
    }
  }
  return out;
}

std::string first_line(std::string_view text, std::size_t limit) {
  return std::string(text.substr(0, std::min(text.find('\n'), limit)));
}

bool enabled(Level level) { return spdlog::default_logger_raw()->should_log(to_spdlog(level)); }

void write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  const auto spd_level = to_spdlog(level);
  if (!logger->should_log(spd_level)) return;
  const std::string message =
      json_format.load() ? render_json(event, fields) : render_text(event, fields);
  logger->log(spd_level, spdlog::string_view_t(message.data(), message.size()));
}

}  // namespace log

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
    // The message is the rest of the object, rendered by log::write.
    logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","service":"%n"%v})",
                        spdlog::pattern_time_type::utc);
  } else if (format == "text") {
    logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%fZ level=%l service=%n %v",
                        spdlog::pattern_time_type::utc);
  } else {
    throw ConfigError("LOG_FORMAT: expected text or json, got '" + format + "'");
  }
  json_format = format == "json";
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

}  // namespace pipeline
