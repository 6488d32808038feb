#pragma once

#include <string>
#include <vector>

#include "bench_report_figures.hpp"
#include "bench_report_inputs.hpp"

namespace bench_report {

/// The generated section of BENCHMARKS.md, between its begin and end markers:
/// the run's machine, the scenario table, the stage ceilings, the sustained
/// run's windows, the CPU tables and the targets. `results_path` is the
/// results file it points to for the raw figures.
std::string generated_section(const RunFiles& run, const Figures& f,
                              const std::vector<Target>& targets, const std::string& results_path);

/// Replaces the generated section of the markdown file at `path` with
/// `section`, keeping the rest of the file; a file without one (or no file)
/// gets it at the top, under a title.
void replace_generated_section(const std::string& path, const std::string& section);

/// Replaces the part of the markdown file at `path` from `begin` to `end`
/// (markers included) with `section`; a file without them gets it at its end.
void replace_marked_section(const std::string& path, const std::string& section,
                            const std::string& begin, const std::string& end);

}  // namespace bench_report
