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
#include <string_view>
#include <vector>

#include "bench_report_figures.hpp"
#include "bench_report_inputs.hpp"
#include "bench_report_markdown.hpp"
#include "bench_report_subscribe.hpp"
#include "flags.hpp"

namespace bench_report {
namespace {

using nlohmann::json;

json targets_json(const std::vector<Target>& targets) {
  json out = json::array();
  for (const auto& t : targets) {
    out.push_back({{"name", t.name}, {"goal", t.goal}, {"measured", t.measured}, {"met", t.met}});
  }
  return out;
}

void print_targets(const std::vector<Target>& targets) {
  for (const auto& t : targets) {
    std::cout << "  " << (t.met ? "met     " : "MISSED  ") << t.name << ": " << t.measured
              << " (goal " << t.goal << ")\n";
  }
}

json machine_json(const Facts& facts) {
  return {{"cores", std::stoi(facts.at("cores"))},
          {"memory_mib", std::stoi(facts.at("memory_mib"))},
          {"cpu", facts.at("cpu")},
          {"kernel", facts.at("kernel")}};
}

json versions_json(const Facts& facts) {
  return {{"nats_server", facts.at("nats_server")},
          {"postgres", facts.at("postgres")},
          {"gxx", facts.at("gxx")},
          {"commit", facts.at("commit")},
          {"build_type", facts.at("build_type")}};
}

// Every raw output of the run, with the figures derived from them.
// Scenario 7: loadgen's figures and the CPU of each component, by format
// ("json_array", "ndjson", ..., "otlp", "bulk", "loki").
json body_formats_json(const RunFiles& run) {
  json out = json::object();
  for (const auto& [name, body] : run.bodies) {
    std::string key = name.substr(std::string_view("body_").size());
    if (key == "json") key = "json_array";
    out[key] = {{"loadgen", body}, {"cpu_seconds", run.cpu.value(name, json::object())}};
  }
  return out;
}

json results_json(const RunFiles& run, const Figures& f, const std::vector<Target>& targets) {
  const Facts& facts = run.facts;
  return {
      {"date", facts.at("date")},
      {"machine", machine_json(facts)},
      {"versions", versions_json(facts)},
      {"scenarios",
       {{"seed", run.seed},
        {"seed_runs_end_to_end_events_per_second", run.seed_all},
        {"single_events", run.single},
        {"single_events_keep_alive_header", run.single_header ? *run.single_header : json()},
        {"http_baseline_get_health", run.health ? *run.health : json()},
        {"body_formats", body_formats_json(run)},
        {"storage", run.storage ? *run.storage : json()},
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
      {"targets", targets_json(targets)},
  };
}

void write_results(const std::string& path, const json& results) {
  std::ofstream out(path);
  out << results.dump(2) << "\n";
  if (!out) throw std::runtime_error("cannot write " + path);
}

// Writes the subscribe scenarios' section of the markdown (every run) and,
// with --only=subscribe, a results file of their own.
std::vector<Target> report_subscribe(const SubscribeFiles& sub, const Facts& facts,
                                     const std::string& results, const std::string& markdown,
                                     bool only) {
  std::vector<Target> targets = subscribe_targets(sub);
  if (only) {
    write_results(results, {{"date", facts.at("date")},
                            {"machine", machine_json(facts)},
                            {"versions", versions_json(facts)},
                            {"scenarios", {{"subscribe", subscribe_json(sub)}}},
                            {"targets", targets_json(targets)}});
  }
  if (sub.any() || only) {
    replace_marked_section(markdown, subscribe_section(sub, facts, targets, results),
                           kSubscribeBegin, kSubscribeEnd);
  }
  return targets;
}

int run(int argc, char** argv) {
  loadtest::Flags flags("bench_report", "Writes the results of a bench run (scripts/bench.sh).");
  flags.add("dir", "", "the run's directory of raw outputs");
  flags.add("results", "bench-results/latest.json", "results file to write");
  flags.add("markdown", "BENCHMARKS.md", "markdown file whose generated section to replace");
  flags.add("only", "", "subscribe: the run had only the subscribe scenarios (BENCH_ONLY)");
  if (!flags.parse(argc, argv)) return 0;
  const std::string dir = flags.str("dir");
  if (dir.empty()) throw std::invalid_argument("--dir is required");
  const std::string only = flags.str("only");
  if (!only.empty() && only != "subscribe") throw std::invalid_argument("--only must be subscribe");
  const std::string& results = flags.str("results");
  const std::string& markdown = flags.str("markdown");

  if (only == "subscribe") {
    const auto targets =
        report_subscribe(read_subscribe_files(dir), read_run_facts(dir), results, markdown, true);
    std::cout << "bench: results in " << results << ", table in " << markdown << "\n";
    print_targets(targets);
    return 0;
  }
  const RunFiles files = read_run_files(dir);
  const Figures figures = derive_figures(files);
  const std::vector<Target> targets = assess_targets(files, figures);
  json all = results_json(files, figures, targets);
  const SubscribeFiles sub = read_subscribe_files(dir);
  const auto sub_targets = report_subscribe(sub, files.facts, results, markdown, false);
  if (sub.any()) {
    all["scenarios"]["subscribe"] = subscribe_json(sub);
    all["subscribe_targets"] = targets_json(sub_targets);
  }
  write_results(results, all);
  replace_generated_section(markdown, generated_section(files, figures, targets, results));

  std::cout << "bench: results in " << results << ", table in " << markdown << "\n";
  print_targets(targets);
  print_targets(sub_targets);
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
