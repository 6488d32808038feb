#pragma once

#include <cstddef>
#include <cstdint>

#include "loadgen_options.hpp"
#include "pipeline_stats.hpp"
#include "publisher.hpp"

namespace loadgen {

/// The line publish() prints on stderr every second (none with --quiet):
/// events dispatched, the last second's events/s, requests/s and p99, the
/// retries and errors so far, and the consumer lag of the last /stats sample.
class ProgressLine {
 public:
  ProgressLine(const Options& o, const StatsSampler& sampler, Clock::time_point start);

  /// When the next line is due.
  Clock::time_point next() const { return next_; }

  /// The line for the time since the last one, up to `now`; schedules the next.
  void print(Clock::time_point now, const Totals& totals, std::uint64_t dispatched);

 private:
  const Options& o_;
  const StatsSampler& sampler_;
  Clock::time_point start_;
  Clock::time_point last_tick_;
  Clock::time_point next_;
  std::size_t latencies_at_tick_ = 0;
  std::uint64_t events_at_tick_ = 0;
};

}  // namespace loadgen
