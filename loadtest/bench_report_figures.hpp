#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_report_inputs.hpp"
#include "format.hpp"

namespace bench_report {

inline std::string num(double v, int decimals = 0) { return loadtest::format_number(v, decimals); }

inline double mib(double kib) { return kib / 1024.0; }

/// loadgen's exact /stats check passed.
bool verified(const nlohmann::json& run);

/// What the report computes from the raw outputs.
struct Figures {
  // Stage ceilings: each stage's workload events/s, and the pipeline's
  // ceiling when the three run one after the other.
  double publish = 0;
  double consume = 0;
  double insert = 0;
  double combined = 0;  ///< 1 / (1/publish + 1/consume + 1/insert)
  double seed_e2e = 0;  ///< scenario 1's end-to-end events/s
  double ratio = 0;     ///< seed_e2e / combined

  // Scenario 3 (sustained): throughput over time, lag, memory.
  nlohmann::json windows;  ///< 5 s windows of completed events/s and CPU cores
  double first_half = 0;   ///< mean events/s of the first half of the windows
  double second_half = 0;  ///< ... and of the second half
  double max_lag = 0;      ///< the highest `pending` sampled
  std::map<std::string, double> rss_peak_sampled;  ///< highest RSS sample (KiB) per component
};

Figures derive_figures(const RunFiles& run);

/// One goal of issue 6, and whether this run met it.
struct Target {
  std::string name;
  std::string goal;
  std::string measured;
  bool met;
};

/// The targets, in the order of the report.
std::vector<Target> assess_targets(const RunFiles& run, const Figures& f);

}  // namespace bench_report
