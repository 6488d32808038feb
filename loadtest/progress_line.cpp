#include "progress_line.hpp"

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "format.hpp"

namespace loadgen {

ProgressLine::ProgressLine(const Options& o, const StatsSampler& sampler, Clock::time_point start)
    : o_(o),
      sampler_(sampler),
      start_(start),
      last_tick_(start),
      next_(start + std::chrono::seconds(1)) {}

void ProgressLine::print(Clock::time_point now, const Totals& totals, std::uint64_t dispatched) {
  const double dt = seconds_between(last_tick_, now);
  const std::size_t from = latencies_at_tick_;
  std::vector<std::uint32_t> recent(totals.latencies_us.begin() + static_cast<std::ptrdiff_t>(from),
                                    totals.latencies_us.end());
  std::string p99 = "-";
  if (!recent.empty()) {
    const std::size_t k = (recent.size() * 99 + 99) / 100 - 1;
    std::nth_element(recent.begin(), recent.begin() + static_cast<std::ptrdiff_t>(k), recent.end());
    p99 = loadtest::format_number(recent[k] / 1000.0, 1) + " ms";
  }
  const std::uint64_t events_done = totals.accepted + totals.duplicates;
  if (!o_.quiet) {
    std::string line = "loadgen [" + loadtest::format_number(seconds_between(start_, now), 0) +
                       "s] events " + loadtest::format_count(dispatched);
    if (o_.workload.events > 0) line += "/" + loadtest::format_count(o_.workload.events);
    line +=
        "  " + loadtest::format_number(loadtest::per_second(events_done - events_at_tick_, dt), 0) +
        " ev/s  " + loadtest::format_number(loadtest::per_second(recent.size(), dt), 0) +
        " req/s  p99 " + p99 + "  retries " + loadtest::format_count(totals.retries) + "  errors " +
        loadtest::format_count(totals.connection_errors + totals.timeouts + totals.permanent);
    if (sampler_.last_pending() >= 0)
      line +=
          "  lag " + loadtest::format_count(static_cast<std::uint64_t>(sampler_.last_pending()));
    std::cerr << line << "\n";
  }
  last_tick_ = now;
  latencies_at_tick_ = totals.latencies_us.size();
  events_at_tick_ = events_done;
  next_ += std::chrono::seconds(1);
  if (next_ < now) next_ = now + std::chrono::seconds(1);
}

}  // namespace loadgen
