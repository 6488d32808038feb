#include "pipeline/timestamp.hpp"

#include <chrono>
#include <cstdio>

namespace pipeline {
namespace {

constexpr std::int64_t kMicrosPerSecond = 1'000'000;

// Howard Hinnant's days_from_civil: days since 1970-01-01 of a proleptic
// Gregorian date.
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month;
  unsigned day;
};

constexpr Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2 ? 1 : 0), m, d};
}

constexpr bool is_leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

constexpr unsigned days_in_month(std::int64_t y, unsigned m) {
  constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}

  bool digits(std::size_t count, unsigned* out) {
    unsigned value = 0;
    for (std::size_t i = 0; i < count; ++i) {
      if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9') return false;
      value = value * 10 + static_cast<unsigned>(text_[pos_++] - '0');
    }
    *out = value;
    return true;
  }
  bool literal(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool at_end() const { return pos_ == text_.size(); }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip() { ++pos_; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

std::optional<UtcTimestamp> fail(std::string* why, const char* reason) {
  if (why != nullptr) *why = reason;
  return std::nullopt;
}

}  // namespace

std::optional<UtcTimestamp> parse_rfc3339(std::string_view text, std::string* why) {
  Cursor in(text);
  unsigned year = 0;
  unsigned month = 0;
  unsigned day = 0;
  unsigned hour = 0;
  unsigned minute = 0;
  unsigned second = 0;
  if (!in.digits(4, &year) || !in.literal('-') || !in.digits(2, &month) || !in.literal('-') ||
      !in.digits(2, &day)) {
    return fail(why, "expected an RFC 3339 date-time like 2026-01-31T12:00:00Z");
  }
  if (!in.literal('T') && !in.literal('t')) {
    return fail(why, "expected 'T' between date and time (RFC 3339 date-time with a time zone)");
  }
  if (!in.digits(2, &hour) || !in.literal(':') || !in.digits(2, &minute) || !in.literal(':') ||
      !in.digits(2, &second)) {
    return fail(why, "expected a time HH:MM:SS");
  }
  std::int64_t micros = 0;
  if (in.literal('.')) {
    int fraction_digits = 0;
    while (in.peek() >= '0' && in.peek() <= '9') {
      if (fraction_digits < 6) {
        micros = micros * 10 + (in.peek() - '0');
      }
      ++fraction_digits;
      in.skip();
    }
    if (fraction_digits == 0) return fail(why, "expected digits after the decimal point");
    for (int i = fraction_digits; i < 6; ++i) micros *= 10;
  }
  std::int64_t offset_seconds = 0;
  if (in.literal('Z') || in.literal('z')) {
    // UTC
  } else if (in.peek() == '+' || in.peek() == '-') {
    const bool negative = in.peek() == '-';
    in.skip();
    unsigned off_h = 0;
    unsigned off_m = 0;
    if (!in.digits(2, &off_h)) return fail(why, "expected a time zone offset +HH:MM");
    in.literal(':');
    if (!in.digits(2, &off_m) || off_h > 23 || off_m > 59) {
      return fail(why, "expected a time zone offset +HH:MM");
    }
    offset_seconds = (negative ? -1 : 1) * static_cast<std::int64_t>(off_h * 3600 + off_m * 60);
  } else {
    return fail(why, "a time zone is required ('Z' or an offset like +01:00)");
  }
  if (!in.at_end()) return fail(why, "unexpected characters after the date-time");
  if (year < 1) return fail(why, "year must be between 0001 and 9999");
  if (month < 1 || month > 12) return fail(why, "month must be 01..12");
  if (day < 1 || day > days_in_month(year, month))
    return fail(why, "day does not exist in that month");
  if (hour > 23 || minute > 59 || second > 59) return fail(why, "time of day out of range");

  const std::int64_t days = days_from_civil(year, month, day);
  const std::int64_t seconds = days * 86400 + std::int64_t{hour} * 3600 +
                               std::int64_t{minute} * 60 + second - offset_seconds;
  // The offset can carry an edge date into year 0 or 10000, which the UTC
  // form (and the processor re-reading it) cannot hold.
  constexpr std::int64_t kFirstSecond = days_from_civil(1, 1, 1) * 86400;
  constexpr std::int64_t kEndSecond = days_from_civil(10000, 1, 1) * 86400;
  if (seconds < kFirstSecond || seconds >= kEndSecond) {
    return fail(why, "in UTC the time falls outside the years 0001 to 9999");
  }
  return UtcTimestamp{seconds * kMicrosPerSecond + micros};
}

std::string format_rfc3339(UtcTimestamp ts) {
  std::int64_t seconds = ts.micros_since_epoch / kMicrosPerSecond;
  std::int64_t micros = ts.micros_since_epoch % kMicrosPerSecond;
  if (micros < 0) {
    micros += kMicrosPerSecond;
    seconds -= 1;
  }
  std::int64_t days = seconds / 86400;
  std::int64_t rem = seconds % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  const Civil date = civil_from_days(days);
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%06lldZ",
                static_cast<long long>(date.year), date.month, date.day,
                static_cast<long long>(rem / 3600), static_cast<long long>(rem % 3600 / 60),
                static_cast<long long>(rem % 60), static_cast<long long>(micros));
  return buffer;
}

UtcTimestamp now_utc() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return UtcTimestamp{std::chrono::duration_cast<std::chrono::microseconds>(now).count()};
}

}  // namespace pipeline
