#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "flags.hpp"
#include "pipeline/event.hpp"
#include "workload.hpp"

/// What the stage benches (bench_publish, bench_consume, bench_insert) share:
/// the workload flags, the events exactly as ingest normalises them, and the
/// result line. Each bench measures one stage alone on the running stack,
/// using scratch streams and tables that it removes afterwards.
namespace loadtest::bench {

/// Declares the workload flags (loadgen's, with 100,000 events by default).
void add_workload_flags(Flags& flags);

/// Reads them back, with a fixed run id as long as loadgen's.
WorkloadConfig workload_from_flags(const Flags& flags);

/// The planned events (duplicates included, in plan order) after ingest's own
/// parsing and validation, so encode_event gives the bytes ingest publishes.
/// `duplicate[i]` says whether event i repeats an earlier key.
std::vector<pipeline::Event> normalized_events(const WorkloadConfig& config,
                                               std::vector<bool>* duplicate);

/// A name unique to this process, for scratch streams and tables.
std::string scratch_name(const std::string& prefix);

/// Prints the result and writes it to `json_path` (when not empty). The
/// result gets "workload_events_per_second": the workload's events (with
/// duplicates) over the stage's time, the figure the stage ceilings compare.
void report(const std::string& stage, nlohmann::json result, std::uint64_t workload_events,
            double seconds, const std::string& json_path);

/// Runs `body`, printing an exception as "<program>: error" and returning 1.
int guarded_main(const char* program, const std::function<int()>& body);

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace loadtest::bench
