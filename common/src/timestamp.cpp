#include "pipeline/timestamp.hpp"

#include <chrono>
#include <cstdio>

#include <date/date.h>

namespace pipeline {
namespace {

using Micros = std::chrono::duration<std::int64_t, std::micro>;
using SysMicros = std::chrono::time_point<std::chrono::system_clock, Micros>;

// The first instant of year 0001 and the first of 10000: the range the UTC
// form "YYYY-..." (and the processor re-reading it) can hold.
constexpr SysMicros kFirstInstant{date::sys_days{date::year{1} / 1 / 1}};
constexpr SysMicros kEndInstant{date::sys_days{date::year{10000} / 1 / 1}};

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
  const date::year_month_day ymd{date::year{static_cast<int>(year)}, date::month{month},
                                 date::day{day}};
  if (!ymd.ok()) return fail(why, "day does not exist in that month");
  if (hour > 23 || minute > 59 || second > 59) return fail(why, "time of day out of range");

  const SysMicros instant = SysMicros{date::sys_days{ymd}} + std::chrono::hours{hour} +
                            std::chrono::minutes{minute} + std::chrono::seconds{second} +
                            Micros{micros} - std::chrono::seconds{offset_seconds};
  // The offset can carry an edge date into year 0 or 10000.
  if (instant < kFirstInstant || instant >= kEndInstant) {
    return fail(why, "in UTC the time falls outside the years 0001 to 9999");
  }
  return UtcTimestamp{instant.time_since_epoch().count()};
}

std::string format_rfc3339(UtcTimestamp ts) {
  return date::format("%FT%TZ", SysMicros{Micros{ts.micros_since_epoch}});
}

UtcTimestamp now_utc() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return UtcTimestamp{std::chrono::duration_cast<std::chrono::microseconds>(now).count()};
}

}  // namespace pipeline
