// bench_report: turns the raw outputs of one `make bench` run (loadgen and
// stage-bench JSON files, CPU and RSS samples, machine facts) into the
// results file and the generated table of BENCHMARKS.md.
//
//   bench_report --dir=RUN_DIR --results=FILE.json --markdown=BENCHMARKS.md
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_report_figures.hpp"
#include "bench_report_inputs.hpp"
#include "bench_report_markdown.hpp"
#include "flags.hpp"

namespace bench_report {
namespace {

using nlohmann::json;

// Every raw output of the run, with the figures derived from them.
json results_json(const RunFiles& run, const Figures& f, const std::vector<Target>& targets) {
  json target_json = json::array();
  for (const auto& t : targets) {
    target_json.push_back(
        {{"name", t.name}, {"goal", t.goal}, {"measured", t.measured}, {"met", t.met}});
  }
  const Facts& facts = run.facts;
  return {
      {"date", facts.at("date")},
      {"machine",
       {{"cores", std::stoi(facts.at("cores"))},
        {"memory_mib", std::stoi(facts.at("memory_mib"))},
        {"cpu", facts.at("cpu")},
        {"kernel", facts.at("kernel")}}},
      {"versions",
       {{"nats_server", facts.at("nats_server")},
        {"postgres", facts.at("postgres")},
        {"gxx", facts.at("gxx")},
        {"commit", facts.at("commit")},
        {"build_type", facts.at("build_type")}}},
      {"scenarios",
       {{"seed", run.seed},
        {"seed_runs_end_to_end_events_per_second", run.seed_all},
        {"single_events", run.single},
        {"single_events_keep_alive_header", run.single_header ? *run.single_header : json()},
        {"http_baseline_get_health", run.health ? *run.health : json()},
        {"sustained",
         {{"loadgen", run.sustained},
          {"throughput_windows_5s", f.windows},
          {"first_half_events_per_second", f.first_half},
          {"second_half_events_per_second", f.second_half},
          {"max_consumer_lag", f.max_lag},
          {"rss_kib_and_cpu_ticks_per_second", run.usage},
          {"peak_rss_kib", {{"sampled", f.rss_peak_sampled}, {"vm_hwm", run.hwm}}}}},
        {"stage_ceilings",
         {{"publish", run.publish},
          {"consume", run.consume},
          {"insert", run.insert},
          {"combined_events_per_second", f.combined},
          {"seed_end_to_end_ratio", f.ratio}}}}},
      {"cpu_seconds", run.cpu},
      {"targets", target_json},
  };
}

void write_results(const std::string& path, const json& results) {
  std::ofstream out(path);
  out << results.dump(2) << "\n";
  if (!out) throw std::runtime_error("cannot write " + path);
}

int run(int argc, char** argv) {
  loadtest::Flags flags("bench_report", "Writes the results of a bench run (scripts/bench.sh).");
  flags.add("dir", "", "the run's directory of raw outputs");
  flags.add("results", "bench-results/latest.json", "results file to write");
  flags.add("markdown", "BENCHMARKS.md", "markdown file whose generated section to replace");
  if (!flags.parse(argc, argv)) return 0;
  const std::string dir = flags.str("dir");
  if (dir.empty()) throw std::invalid_argument("--dir is required");

  const RunFiles files = read_run_files(dir);
  const Figures figures = derive_figures(files);
  const std::vector<Target> targets = assess_targets(files, figures);
  write_results(flags.str("results"), results_json(files, figures, targets));
  replace_generated_section(flags.str("markdown"),
                            generated_section(files, figures, targets, flags.str("results")));

  std::cout << "bench: results in " << flags.str("results") << ", table in "
            << flags.str("markdown") << "\n";
  for (const auto& t : targets) {
    std::cout << "  " << (t.met ? "met     " : "MISSED  ") << t.name << ": " << t.measured
              << " (goal " << t.goal << ")\n";
  }
  return 0;
}

}  // namespace
}  // namespace bench_report

int main(int argc, char** argv) {
  try {
    return bench_report::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench_report: " << e.what() << "\n";
    return 1;
  }
}
