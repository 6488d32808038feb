#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pipeline {

/// A point in time as microseconds since the Unix epoch, UTC.
struct UtcTimestamp {
  std::int64_t micros_since_epoch = 0;
};

/// Parses an RFC 3339 / ISO 8601 date-time that carries a time zone
/// ("Z" or "+HH:MM"), e.g. "2026-11-24T10:15:30.5+01:00". Rejects impossible
/// dates (2026-02-30), missing zones and years outside 0001..9999. Fractions
/// beyond microseconds are truncated. Returns nullopt and fills `why` when the
/// text is not such a date-time. Never throws.
std::optional<UtcTimestamp> parse_rfc3339(std::string_view text, std::string* why = nullptr);

/// Formats as "YYYY-MM-DDTHH:MM:SS.ffffffZ" (always UTC, six fraction digits).
std::string format_rfc3339(UtcTimestamp ts);

/// The current time.
UtcTimestamp now_utc();

}  // namespace pipeline
