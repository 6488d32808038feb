#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ingest {

/// Checks "Authorization: Bearer <token>" against the configured tokens,
/// comparing in constant time (the time does not depend on where a guess
/// first differs, nor on which token matched).
class TokenAuthenticator {
 public:
  explicit TokenAuthenticator(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {}

  /// False when no tokens are configured (authentication off).
  bool enabled() const { return !tokens_.empty(); }

  /// The matching token for an Authorization header value, or nullopt.
  std::optional<std::string> authenticate(std::string_view authorization_header) const;

 private:
  std::vector<std::string> tokens_;
};

/// Compares two strings in time that depends only on their lengths.
bool constant_time_equals(std::string_view a, std::string_view b);

/// A token bucket per key (a token, or a client address): `rate` requests per
/// second on average, up to `burst` at once. Thread-safe.
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  RateLimiter(double rate_per_second, std::size_t burst);

  bool enabled() const { return rate_ > 0; }

  /// True when the request may go ahead; otherwise sets `retry_after` to the
  /// time until the next request would be allowed.
  bool allow(const std::string& key, Clock::time_point now, std::chrono::milliseconds* retry_after);

 private:
  struct Bucket {
    double tokens;
    Clock::time_point updated;
  };

  double rate_;
  double burst_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
  Clock::time_point next_sweep_{};
};

}  // namespace ingest
