#include "ingest/access_control.hpp"

#include <cctype>

#include <algorithm>
#include <cmath>

namespace ingest {
namespace {

// Keys idle this long have a full bucket anyway: forget them.
constexpr auto kSweepInterval = std::chrono::seconds(60);

}  // namespace

bool constant_time_equals(std::string_view a, std::string_view b) {
  const std::size_t length = std::max(a.size(), b.size());
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < length; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    difference |= static_cast<unsigned char>(x ^ y);
  }
  return difference == 0;
}

std::optional<std::string> TokenAuthenticator::authenticate(std::string_view header) const {
  // RFC 9110 §11.1: the scheme name is case-insensitive; one or more
  // spaces separate it from the token.
  constexpr std::string_view kScheme = "bearer";
  if (header.size() <= kScheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return std::nullopt;
  }
  std::size_t start = kScheme.size();
  if (header[start] != ' ') return std::nullopt;
  while (start < header.size() && header[start] == ' ') ++start;
  const std::string_view presented = header.substr(start);
  if (presented.empty()) return std::nullopt;
  std::optional<std::string> match;
  for (const auto& token : tokens_) {  // no early exit: every token is compared
    if (constant_time_equals(presented, token)) match = token;
  }
  return match;
}

RateLimiter::RateLimiter(double rate_per_second, std::size_t burst)
    : rate_(rate_per_second), burst_(static_cast<double>(std::max<std::size_t>(burst, 1))) {}

bool RateLimiter::allow(const std::string& key, Clock::time_point now,
                        std::chrono::milliseconds* retry_after) {
  if (!enabled()) return true;
  std::lock_guard<std::mutex> lock(mutex_);
  if (now >= next_sweep_) {
    // Forget only buckets that have refilled to full: a new bucket starts
    // full, so forgetting one earlier would hand a limited client a fresh burst.
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      const double idle = std::chrono::duration<double>(now - it->second.updated).count();
      it = it->second.tokens + idle * rate_ >= burst_ ? buckets_.erase(it) : std::next(it);
    }
    next_sweep_ = now + kSweepInterval;
  }
  auto [it, inserted] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& bucket = it->second;
  if (!inserted) {
    const double elapsed = std::chrono::duration<double>(now - bucket.updated).count();
    bucket.tokens = std::min(burst_, bucket.tokens + elapsed * rate_);
    bucket.updated = now;
  }
  if (bucket.tokens >= 1.0) {
    bucket.tokens -= 1.0;
    return true;
  }
  const double wait_seconds = (1.0 - bucket.tokens) / rate_;
  *retry_after =
      std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(wait_seconds * 1000)));
  return false;
}

}  // namespace ingest
