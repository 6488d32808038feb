#pragma once

#include <string>
#include <string_view>

namespace pipeline {

/// Sets up spdlog for a service: one line per event of interest, to stderr,
/// at `level` (trace, debug, info, warn, error, off), as key=value text
/// (`format` "text") or JSON lines ("json": {"ts","level","service", then
/// the message's key=value pairs as fields; see json_fields}).
/// Throws ConfigError on an unknown level or format.
void init_logging(const std::string& service, const std::string& level,
                  const std::string& format = "text");

/// The JSON fields of a log message, each with its leading comma:
/// `event=x count=3 error="a b"` gives `,"event":"x","count":"3","error":"a b"`
/// (a quoted value ends at a quote followed by the end or by " key="). A message
/// that is not all key=value pairs gives `,"msg":"<the message>"`.
std::string json_fields(std::string_view message);

}  // namespace pipeline
