#pragma once

#include <string>

namespace pipeline {

/// Sets up spdlog for a service: one line per event of interest, to stderr,
/// at `level` (trace, debug, info, warn, error, off), as key=value text
/// (`format` "text") or JSON lines ("json": {"ts","level","service","msg"}).
/// Throws ConfigError on an unknown level or format.
void init_logging(const std::string& service, const std::string& level,
                  const std::string& format = "text");

}  // namespace pipeline
