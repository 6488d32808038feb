#pragma once

#include <cstdint>
#include <string>

namespace loadtest {

/// `value` with `decimals` digits after the point and thousands separators:
/// format_number(1234567.891, 1) == "1,234,567.9".
std::string format_number(double value, int decimals);

/// A count with thousands separators: format_count(1234567) == "1,234,567".
std::string format_count(std::uint64_t n);

/// count / seconds.
inline double per_second(std::uint64_t count, double seconds) {
  return static_cast<double>(count) / seconds;
}

}  // namespace loadtest
