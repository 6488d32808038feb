#include "pipeline/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <spdlog/spdlog.h>
#include <memory>

#include "pipeline/settings.hpp"

namespace pipeline {

void init_logging(const std::string& service, const std::string& level) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    throw ConfigError("LOG_LEVEL: expected trace, debug, info, warn, error or off, got '" + level +
                      "'");
  }
  // Not registered by name, so setting up twice (tests) is harmless.
  auto logger =
      std::make_shared<spdlog::logger>(service, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%fZ level=%l service=%n %v",
                      spdlog::pattern_time_type::utc);
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

}  // namespace pipeline
