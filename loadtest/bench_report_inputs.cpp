#include "bench_report_inputs.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "format.hpp"

namespace bench_report {
namespace {

using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("missing " + path);
  return json::parse(in);
}

// An optional file: nullopt when absent.
std::optional<json> read_json_if_present(const std::string& path) {
  if (!std::ifstream(path)) return std::nullopt;
  return read_json(path);
}

Facts read_facts(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("missing " + path);
  Facts facts;
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) facts[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return facts;
}

// Empty when the file is absent; rows with a missing column are skipped.
Table read_table(const std::string& path) {
  std::ifstream in(path);
  Table rows;
  std::string header_line;
  if (!in || !std::getline(in, header_line)) return rows;
  std::istringstream hs(header_line);
  std::vector<std::string> header;
  for (std::string h; hs >> h;) header.push_back(h);
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::map<std::string, double> row;
    for (const auto& h : header) {
      double v = 0;
      if (ls >> v) row[h] = v;
    }
    if (row.size() == header.size()) rows.push_back(row);
  }
  return rows;
}

// Scenario 1 ran three times (older runs: once, as seed.json): the median
// by end-to-end throughput stands for it.
void read_seed_runs(const std::string& dir, RunFiles& run) {
  std::vector<std::pair<json, std::string>> seed_runs;
  for (const char* name : {"seed_run1", "seed_run2", "seed_run3", "seed"}) {
    if (std::ifstream(dir + "/" + name + ".json")) {
      seed_runs.emplace_back(read_json(dir + "/" + name + ".json"), name);
    }
  }
  if (seed_runs.empty()) throw std::runtime_error("missing " + dir + "/seed_run1.json");
  std::sort(seed_runs.begin(), seed_runs.end(), [](const auto& a, const auto& b) {
    return a.first["verify"].value("end_to_end_events_per_second", 0.0) <
           b.first["verify"].value("end_to_end_events_per_second", 0.0);
  });
  run.seed = seed_runs[seed_runs.size() / 2].first;
  run.seed_name = seed_runs[seed_runs.size() / 2].second;
  for (const auto& [seed, name] : seed_runs) {
    run.seed_all +=
        (run.seed_all.empty() ? "" : ", ") +
        loadtest::format_number(seed["verify"].value("end_to_end_events_per_second", 0.0), 0);
  }
}

// The CPU seconds of each component over each scenario that ran (NAME.cpu).
json read_cpu_seconds(const std::string& dir, const RunFiles& run) {
  json cpu = json::object();
  for (std::string scenario : {"seed", "single", "single_header", "health", "sustained"}) {
    if (scenario == "health" && !run.health) continue;
    if (scenario == "single_header" && !run.single_header) continue;
    const std::string name = scenario;
    if (scenario == "seed") scenario = run.seed_name;  // the CPU of the median run
    const auto rows = read_facts(dir + "/" + scenario.append(".cpu"));
    json entry = json::object();
    for (const auto& [k, v] : rows) entry[k] = std::stod(v);
    cpu[name] = entry;
  }
  for (const auto& [name, body] : run.bodies) {
    json entry = json::object();
    std::string path = dir;
    path.append("/").append(name).append(".cpu");
    if (std::ifstream(path)) {
      for (const auto& [k, v] : read_facts(path)) entry[k] = std::stod(v);
    }
    cpu[name] = entry;
  }
  return cpu;
}

}  // namespace

Facts read_run_facts(const std::string& dir) { return read_facts(dir + "/env.txt"); }

RunFiles read_run_files(const std::string& dir) {
  RunFiles run;
  run.facts = read_facts(dir + "/env.txt");
  read_seed_runs(dir, run);
  run.single = read_json(dir + "/single.json");
  run.sustained = read_json(dir + "/sustained.json");
  run.publish = read_json(dir + "/publish.json");
  run.consume = read_json(dir + "/consume.json");
  run.insert = read_json(dir + "/insert.json");
  run.health = read_json_if_present(dir + "/health.json");
  run.single_header = read_json_if_present(dir + "/single_header.json");
  for (const BodyScenario& body : kBodyScenarios) {
    if (auto j = read_json_if_present(dir + "/" + body.name + ".json")) {
      run.bodies.emplace_back(body.name, std::move(*j));
    }
  }
  run.storage = read_json_if_present(dir + "/storage.json");
  run.usage = read_table(dir + "/rss.tsv");
  run.hwm = read_facts(dir + "/hwm.txt");
  run.cpu = read_cpu_seconds(dir, run);
  return run;
}

}  // namespace bench_report
