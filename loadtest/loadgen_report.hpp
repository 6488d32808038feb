#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "loadgen_options.hpp"
#include "pipeline_stats.hpp"
#include "publisher.hpp"
#include "workload.hpp"

namespace loadgen {

/// What one run measured, for its summary and its results file.
struct RunOutcome {
  Totals totals;                             ///< latencies_us sorted
  std::uint64_t sent = 0;                    ///< events sent (the workload's planned events)
  double publish_seconds = 0;                ///< from the first request to the last answer
  double cpu_seconds = 0;                    ///< loadgen's own CPU while publishing
  std::optional<Verification> verification;  ///< none with --no-verify or --get

  /// Events were given up on, refused or rejected.
  bool errors() const { return totals.gave_up > 0 || totals.permanent > 0 || totals.rejected > 0; }
};

/// The summary printed at the end of a run: events, requests, answers,
/// throughput, latency, the /stats check and the errors.
std::string summary(const Options& o, const loadtest::Workload& workload, const RunOutcome& r);

/// The results file of --json: the configuration, the same figures as the
/// summary, the /stats samples taken while publishing and the check's counters.
nlohmann::json results_json(const Options& o, const loadtest::Workload& workload,
                            const RunOutcome& r, nlohmann::json samples);

}  // namespace loadgen
