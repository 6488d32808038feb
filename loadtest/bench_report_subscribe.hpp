#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bench_report_figures.hpp"
#include "bench_report_inputs.hpp"

namespace bench_report {

/// The raw outputs of the GET /subscribe scenarios (scripts/bench/subscribe.sh);
/// each absent when that scenario did not run.
struct SubscribeFiles {
  std::optional<nlohmann::json> latency;          ///< 5: bench_subscribe, 100 subscribers
  std::optional<nlohmann::json> stalled;          ///< 5b: the same with stalled subscribers
  std::optional<nlohmann::json> base;             ///< 6a: loadgen, single events, no subscribers
  std::optional<nlohmann::json> loaded;           ///< 6: the same with the subscriptions open
  std::optional<nlohmann::json> hold;             ///< 6: bench_subscribe --hold's report
  nlohmann::json cpu = nlohmann::json::object();  ///< CPU seconds per scenario (sub_*.cpu)

  bool any() const { return latency || stalled || base || loaded || hold; }
};

/// Reads the subscribe scenarios' files of the run directory `dir`.
SubscribeFiles read_subscribe_files(const std::string& dir);

/// Issue 14's targets, as far as the scenarios that ran can tell.
std::vector<Target> subscribe_targets(const SubscribeFiles& run);

/// The scenarios' figures for the results file.
nlohmann::json subscribe_json(const SubscribeFiles& run);

/// The generated subscribe section of BENCHMARKS.md, its markers included.
std::string subscribe_section(const SubscribeFiles& run, const Facts& facts,
                              const std::vector<Target>& targets, const std::string& results_path);

/// The subscribe section's markers in BENCHMARKS.md.
extern const char* const kSubscribeBegin;
extern const char* const kSubscribeEnd;

}  // namespace bench_report
