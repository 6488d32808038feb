#include "format.hpp"

#include <cstdio>

namespace loadtest {

std::string format_number(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  std::string s = buf;
  const auto dot = s.find('.');
  const int int_end = static_cast<int>(dot == std::string::npos ? s.size() : dot);
  const int int_start = s[0] == '-' ? 1 : 0;
  for (int i = int_end - 3; i > int_start; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

std::string format_count(std::uint64_t n) {
  std::string digits = std::to_string(n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) {
    digits.insert(static_cast<std::size_t>(i), ",");
  }
  return digits;
}

}  // namespace loadtest
