#pragma once

#include <string>

namespace pipeline {

/// Sets up spdlog for a service: one line per event of interest, key=value,
/// to stderr, at `level` (trace, debug, info, warn, error). Throws
/// ConfigError on an unknown level.
void init_logging(const std::string& service, const std::string& level);

}  // namespace pipeline
