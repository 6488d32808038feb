#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

/// The pieces of the bench_report program (bench_report.cpp,
/// bench_report_inputs.cpp, bench_report_figures.cpp, bench_report_markdown.cpp).
namespace bench_report {

/// "key=value" lines.
using Facts = std::map<std::string, std::string>;

/// A whitespace-separated table with a header line: one map per row.
using Table = std::vector<std::map<std::string, double>>;

/// Scenario 7's runs, one per body format: name, what loadgen sent, where.
struct BodyScenario {
  const char* name;
  const char* label;
};
inline constexpr BodyScenario kBodyScenarios[] = {
    {"body_json", "JSON array (`application/json`), `/publish`"},
    {"body_ndjson", "NDJSON (`application/x-ndjson`), `/publish`"},
    {"body_ndjson_gzip", "NDJSON, `Content-Encoding: gzip`, `/publish`"},
    {"body_otlp", "OTLP/HTTP protobuf, `/v1/logs`"},
    {"body_otlp_json", "OTLP/HTTP JSON, `/v1/logs`"},
    {"body_bulk", "Elasticsearch bulk NDJSON (`create` with `_id`), `/_bulk`"},
    {"body_loki", "Loki push, snappy protobuf, `/loki/api/v1/push`"},
};

/// The raw outputs of one `make bench` run (scripts/bench.sh), as read from
/// its directory.
struct RunFiles {
  Facts facts;  ///< env.txt: the machine and versions
  /// Scenario 1: the median of its runs by end-to-end throughput, the name of
  /// that run's files, and every run's end-to-end figure ("5,951, 26,335, ...").
  nlohmann::json seed;
  std::string seed_name;
  std::string seed_all;
  nlohmann::json single;
  nlohmann::json sustained;
  nlohmann::json publish;
  nlohmann::json consume;
  nlohmann::json insert;
  std::optional<nlohmann::json> health;         ///< the HTTP baseline (absent in older runs)
  std::optional<nlohmann::json> single_header;  ///< single events with "Connection: keep-alive"
  /// Scenario 7, the same events in each body format that ran, in
  /// kBodyScenarios' order: the scenario's name ("body_otlp") and loadgen's
  /// JSON (older runs have the first three, or none).
  std::vector<std::pair<std::string, nlohmann::json>> bodies;
  /// storage.json: the events table's bytes after scenario 3 (absent in
  /// older runs).
  std::optional<nlohmann::json> storage;
  Table usage;         ///< rss.tsv: RSS and CPU ticks of each component, every second of scenario 3
  Facts hwm;           ///< hwm.txt: name=VmHWM kB
  nlohmann::json cpu;  ///< CPU seconds per component per scenario (the .cpu files)
};

/// The machine and versions of the run directory `dir` (env.txt). Throws
/// std::runtime_error when it is missing.
Facts read_run_facts(const std::string& dir);

/// Reads the run directory `dir`. Throws std::runtime_error naming the first
/// missing file.
RunFiles read_run_files(const std::string& dir);

}  // namespace bench_report
