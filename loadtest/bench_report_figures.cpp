#include "bench_report_figures.hpp"

#include <algorithm>

namespace bench_report {
namespace {

using nlohmann::json;

// `key` of the sampled table at epoch time `unix`, interpolated between rows.
double value_at(const Table& rows, double unix, const std::string& key) {
  if (rows.empty() || !rows.front().count(key)) return 0;
  if (unix <= rows.front().at("unix")) return rows.front().at(key);
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const double u0 = rows[i - 1].at("unix");
    const double u1 = rows[i].at("unix");
    if (unix <= u1) {
      const double f = u1 > u0 ? (unix - u0) / (u1 - u0) : 1.0;
      return rows[i - 1].at(key) + f * (rows[i].at(key) - rows[i - 1].at(key));
    }
  }
  return rows.back().at(key);
}

// Completed events/s (stored or dropped as duplicates) in windows of `window`
// seconds over loadgen's /stats samples, with the CPU cores each component
// used meanwhile (from the per-second samples of scripts/bench/lib.sh).
json throughput_windows(const json& samples, const Table& usage, double window, double hz) {
  json out = json::array();
  if (samples.size() < 2) return out;
  auto completed = [](const json& s) {
    return s["unique_processed"].get<double>() + s["duplicate_dropped"].get<double>();
  };
  const double base = completed(samples.front());
  const json* from = &samples.front();
  for (const auto& s : samples) {
    const double t0 = (*from)["t"].get<double>();
    const double t = s["t"].get<double>();
    if (t - t0 < window) continue;
    const double c0 = completed(*from);
    const double c = completed(s);
    json w = {{"from", t0},
              {"to", t},
              {"events_per_second", (c - c0) / (t - t0)},
              {"pending", s["pending"]},
              {"completed", c - base}};
    if (s.contains("unix") && !usage.empty()) {
      const double u0 = (*from)["unix"].get<double>();
      const double u1 = s["unix"].get<double>();
      double ours = 0;
      json cores = json::object();
      for (const std::string name : {"ingest", "processor", "nats", "postgres"}) {
        const double used =
            (value_at(usage, u1, name + "_cpu") - value_at(usage, u0, name + "_cpu")) / hz;
        ours += used;
        cores[name] = used / (u1 - u0);
      }
      const double all = (value_at(usage, u1, "all_cpu") - value_at(usage, u0, "all_cpu")) / hz;
      cores["loadgen_and_other"] = (all - ours) / (u1 - u0);
      w["cpu_cores"] = cores;
    }
    out.push_back(w);
    from = &s;
  }
  return out;
}

// Sustained means no drop from the first half of the run to the second
// (halves, so that one window at the start or the drain's tail does not
// decide it; the table shows every window).
void mean_of_halves(const json& windows, double& first_half, double& second_half) {
  std::vector<double> rates;
  for (const auto& w : windows) rates.push_back(w["events_per_second"]);
  const std::size_t half = rates.size() / 2;
  first_half = 0;
  second_half = 0;
  for (std::size_t k = 0; k < half; ++k) {
    first_half += rates[k];
    second_half += rates[rates.size() - 1 - k];
  }
  if (half > 0) {
    first_half /= static_cast<double>(half);
    second_half /= static_cast<double>(half);
  }
}

}  // namespace

bool verified(const json& run) {
  return run.contains("verify") && run["verify"].contains("ok") &&
         run["verify"]["ok"] == json(true);
}

Figures derive_figures(const RunFiles& run) {
  Figures f;
  f.publish = run.publish["workload_events_per_second"];
  f.consume = run.consume["workload_events_per_second"];
  f.insert = run.insert["workload_events_per_second"];
  f.combined = 1.0 / (1.0 / f.publish + 1.0 / f.consume + 1.0 / f.insert);
  f.seed_e2e = run.seed["verify"].value("end_to_end_events_per_second", 0.0);
  f.ratio = f.seed_e2e / f.combined;

  const double hz = run.facts.count("clk_tck") ? std::stod(run.facts.at("clk_tck")) : 100.0;
  f.windows = throughput_windows(run.sustained["samples"], run.usage, 5.0, hz);
  mean_of_halves(f.windows, f.first_half, f.second_half);
  for (const auto& s : run.sustained["samples"])
    f.max_lag = std::max(f.max_lag, s["pending"].get<double>());
  for (const auto& row : run.usage) {
    for (const std::string name : {"ingest", "processor", "nats"}) {
      if (row.count(name))
        f.rss_peak_sampled[name] = std::max(f.rss_peak_sampled[name], row.at(name));
    }
  }
  return f;
}

std::vector<Target> assess_targets(const RunFiles& run, const Figures& f) {
  const auto& hwm = run.hwm;
  const double ingest_rss = mib(std::stod(hwm.count("ingest") ? hwm.at("ingest") : "0"));
  const double processor_rss = mib(std::stod(hwm.count("processor") ? hwm.at("processor") : "0"));
  const double single_p99 = run.single["latency_ms"]["p99"];
  const double single_rps = run.single["requests_per_second"];

  // The single-event ceiling of this run: a request costs at least one pass
  // through the combined stages and one through the HTTP server alone.
  const double health_rps = run.health ? run.health->at("requests_per_second").get<double>() : 0.0;
  const double single_ceiling =
      health_rps > 0 ? 1.0 / (1.0 / f.combined + 1.0 / health_rps) : f.combined;
  const double single_share = single_rps / single_ceiling;
  const double header_rps =
      run.single_header ? run.single_header->at("requests_per_second").get<double>() : 0.0;
  const double header_ratio = header_rps > 0 ? single_rps / header_rps : 0.0;

  std::vector<Target> targets = {
      {"seed vs combined stage ceiling", ">= 0.80", num(f.ratio, 2), f.ratio >= 0.8},
      {"single events, no Connection header vs with one", ">= 0.90",
       num(single_rps) + " vs " + num(header_rps) + " requests/s = " + num(header_ratio, 2),
       header_ratio >= 0.9},
      {"single events vs single-event ceiling (1 / (1/combined + 1/GET /health))", ">= 0.50",
       num(single_rps) + " vs " + num(single_ceiling) + " = " + num(single_share, 2),
       single_share >= 0.5},
      {"single events p99, 64 connections", "< 20 ms", num(single_p99, 1) + " ms", single_p99 < 20},
      {"sustained: no drop in throughput", "second half >= 90% of first half (5 s windows)",
       num(f.second_half) + " vs " + num(f.first_half) + " events/s (" +
           num(100 * f.second_half / std::max(f.first_half, 1.0)) + "%)",
       f.first_half > 0 && f.second_half >= 0.9 * f.first_half},
      {"sustained: ingest peak RSS", "< 150 MiB", num(ingest_rss, 1) + " MiB", ingest_rss < 150},
      {"sustained: processor peak RSS", "< 150 MiB", num(processor_rss, 1) + " MiB",
       processor_rss < 150},
  };
  // Scenario 7 (issue 19): the shippers' protocols against /publish's JSON.
  const nlohmann::json* json_body = nullptr;
  for (const auto& [name, j] : run.bodies) {
    if (name == "body_json") json_body = &j;
  }
  for (const auto& [name, j] : run.bodies) {
    if (json_body == nullptr || (name != "body_otlp" && name != "body_bulk")) continue;
    const double rate = j.value("events_per_second", 0.0);
    const double json_rate = json_body->value("events_per_second", 0.0);
    const double ratio = json_rate > 0 ? rate / json_rate : 0.0;
    targets.push_back({std::string(name == "body_otlp" ? "OTLP protobuf" : "Elasticsearch bulk") +
                           " vs /publish's JSON array, publish events/s",
                       ">= 0.80", num(rate) + " vs " + num(json_rate) + " = " + num(ratio, 2),
                       ratio >= 0.8});
  }
  // Issue 20: the events table per stored event.
  if (run.storage && run.storage->value("rows", 0.0) > 0) {
    const double per_event =
        run.storage->value("total_bytes", 0.0) / run.storage->value("rows", 0.0);
    targets.push_back({"PostgreSQL bytes per stored event (events table, indexes included)",
                       "<= 400", num(per_event), per_event <= 400});
  }
  bool all_verified = true;
  for (const nlohmann::json* j : {&run.seed, &run.single, &run.sustained}) {
    all_verified = all_verified && verified(*j);
  }
  for (const auto& [name, j] : run.bodies) all_verified = all_verified && verified(j);
  if (run.single_header) all_verified = all_verified && verified(*run.single_header);
  targets.push_back(
      {"exact /stats check in every scenario", "OK", all_verified ? "OK" : "FAILED", all_verified});
  return targets;
}

}  // namespace bench_report
