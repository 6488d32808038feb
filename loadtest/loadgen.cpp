// loadgen: a publisher simulator for the pipeline. Publishes a planned set of
// events (with duplicates within and across requests) over keep-alive
// connections, reports throughput and latency, then waits until the pipeline
// has stored everything and checks /stats against what it sent, exactly.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "flags.hpp"
#include "format.hpp"
#include "http.hpp"
#include "pipeline_stats.hpp"
#include "publisher.hpp"
#include "workload.hpp"
#include "workload_flags.hpp"

namespace loadgen {

std::atomic<bool> g_interrupted{false};

namespace {

using loadtest::format_count;
using loadtest::format_number;
using loadtest::per_second;
using nlohmann::json;

std::optional<Options> read_options(int argc, const char* const* argv) {
  loadtest::Flags flags("loadgen",
                        "Publishes events to ingest's POST /publish and checks that the pipeline "
                        "stored them exactly once (GET /stats).");
  flags.add("url", "http://127.0.0.1:8080", "ingest's base URL (loopback only)");
  loadtest::add_workload_flags(flags, "20000");
  flags.add("duration", "0s",
            "stop publishing after this long (0 = when --events are sent; with --events=0, no "
            "event limit)");
  flags.add("connections", "8", "concurrent connections (kept alive, as HTTP/1.1 does by default)");
  flags.add("keep-alive-header", "false",
            "send \"Connection: keep-alive\" with every request (standard clients do not; "
            "to compare)");
  flags.add("rate", "0", "target events per second over all connections (0 = unbounded)");
  flags.add("run-id", "", "prefix of every event_id (default: new for each run)");
  flags.add("token", "", "bearer token for ingest's API (INGEST_API_TOKENS)");
  flags.add("max-retries", "20",
            "retries of a request without answer, or 503/429, before giving up");
  flags.add("request-timeout", "30s", "time to wait for one response");
  flags.add("timeout", "120s", "time to wait for the pipeline to store everything");
  flags.add("sample-interval", "1s", "how often to sample GET /stats while publishing (0 = never)");
  flags.add("no-verify", "false", "skip waiting for the pipeline and checking /stats");
  flags.add("quiet", "false", "no progress lines");
  flags.add("get", "",
            "instead of publishing, GET this path (e.g. /health) for --duration: the HTTP "
            "server's own ceiling, without NATS or PostgreSQL");
  if (!flags.parse(argc, argv)) return std::nullopt;

  Options o;
  o.url = flags.str("url");
  o.port = loadtest::loopback_port(o.url);
  if (!flags.str("token").empty()) o.authorization = "Bearer " + flags.str("token");
  o.keep_alive_header = flags.boolean("keep-alive-header");
  o.workload = loadtest::workload_from_flags(flags);
  auto& w = o.workload;
  w.run_id = flags.str("run-id");
  if (w.run_id.empty()) {
    const auto now = std::chrono::system_clock::now().time_since_epoch().count();
    char buf[32];
    std::snprintf(
        buf, sizeof buf, "r%08llx",
        static_cast<unsigned long long>(now ^ (static_cast<long long>(::getpid()) << 20)) &
            0xffffffffULL);
    w.run_id = buf;
  }
  o.connections = static_cast<std::size_t>(flags.integer("connections", 1, 4096));
  o.rate = flags.number("rate", 0, 1e9);
  o.duration = flags.duration("duration");
  o.drain_timeout = flags.duration("timeout");
  o.request_timeout = flags.duration("request-timeout");
  o.sample_interval = flags.duration("sample-interval");
  o.max_retries = static_cast<int>(flags.integer("max-retries", 0, 1000));
  o.verify = !flags.boolean("no-verify");
  o.quiet = flags.boolean("quiet");
  o.json_path = flags.str("json");
  o.get_path = flags.str("get");
  if (!o.get_path.empty()) {
    if (o.get_path[0] != '/') throw std::invalid_argument("--get must be a path like /health");
    if (o.duration.count() == 0) throw std::invalid_argument("--get needs a --duration");
    o.verify = false;
  }
  if (w.events == 0 && o.duration.count() == 0) {
    throw std::invalid_argument("--events=0 needs a --duration");
  }
  return o;
}

double percentile_ms(const std::vector<std::uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1] / 1000.0;
}

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int run(const Options& o) {
  loadtest::Workload workload(o.workload);
  loadtest::BlockingClient control(o.port, o.authorization, 10000);
  std::optional<Stats> before;
  if (o.verify) {
    before = idle_baseline(control, o);
    if (!before) {
      std::cerr << "loadgen: no usable GET /stats from " << o.url
                << " (is the stack up and idle? use --no-verify to publish anyway)\n";
      return 1;
    }
  }

  const auto& w = o.workload;
  std::cerr << "loadgen: "
            << (w.events > 0 ? format_count(w.events) + " events" : std::string("events"))
            << (o.duration.count() > 0
                    ? " for up to " +
                          format_number(static_cast<double>(o.duration.count()) / 1000, 0) + " s"
                    : "")
            << " to " << o.url << ", " << o.connections << " connections, batch " << w.batch << ", "
            << format_number(w.duplicate_ratio * 100, 0) << "% duplicates, " << w.topics
            << " topics, " << w.payload_bytes << "-byte payloads, rate "
            << (o.rate > 0 ? format_count(static_cast<std::uint64_t>(o.rate)) + " ev/s"
                           : std::string("unbounded"))
            << ", seed " << w.seed << ", run id " << w.run_id << "\n";

  const auto start = Clock::now();
  const double cpu_start = cpu_seconds();
  StatsSampler sampler(o, start);
  const PublishResult published = publish(o, workload, sampler, start);
  const double cpu_used = cpu_seconds() - cpu_start;
  Totals t = published.totals;
  std::sort(t.latencies_us.begin(), t.latencies_us.end());
  const double publish_seconds =
      std::max(1e-9, seconds_between(published.first_send, published.end));
  const std::uint64_t sent = workload.planned();

  std::optional<Verification> v;
  if (o.verify) {
    v = verify(control, o, *before, workload.unique(), workload.duplicates(), t.ambiguous,
               published.first_send);
  }
  sampler.stop();

  // ---- report
  std::ostringstream out;
  out << "\nloadgen summary (run id " << w.run_id << ")\n";
  out << "  events sent        " << format_count(sent) << " (" << format_count(workload.unique())
      << " unique, " << format_count(workload.duplicates())
      << " duplicates: " << format_count(workload.duplicates_within_request())
      << " within a request, " << format_count(workload.duplicates_across_requests())
      << " across requests)\n";
  out << "  requests           " << format_count(t.requests) << " (" << format_count(t.retries)
      << " retries, " << format_count(t.connection_errors) << " connection errors, "
      << format_count(t.timeouts) << " timeouts)\n";
  out << "  HTTP status        ";
  for (const auto& [status, count] : t.status_counts)
    out << status << ": " << format_count(count) << "  ";
  out << "\n  answers per event  accepted " << format_count(t.accepted) << ", duplicate "
      << format_count(t.duplicates) << ", rejected " << format_count(t.rejected) << ", failed "
      << format_count(t.failed) << "\n";
  out << "  publish time       " << format_number(publish_seconds, 3) << " s\n";
  out << "  request throughput " << format_number(per_second(t.responses, publish_seconds), 0)
      << " req/s\n";
  out << "  event throughput   " << format_number(per_second(sent, publish_seconds), 0)
      << " events/s\n";
  out << "  latency            p50 " << format_number(percentile_ms(t.latencies_us, 0.50), 2)
      << " ms, p95 " << format_number(percentile_ms(t.latencies_us, 0.95), 2) << " ms, p99 "
      << format_number(percentile_ms(t.latencies_us, 0.99), 2) << " ms, max "
      << format_number(percentile_ms(t.latencies_us, 1.0), 2) << " ms\n";
  out << "  loadgen CPU        " << format_number(cpu_used, 2) << " s ("
      << format_number(100 * cpu_used / publish_seconds, 0) << "% of one core)\n";
  if (v) {
    const Stats d = v->after.minus(v->before);
    if (v->done) {
      out << "  end to end         " << format_number(v->end_to_end_seconds, 3) << " s, "
          << format_number(per_second(sent, v->end_to_end_seconds), 0) << " events/s\n";
    }
    out << "  /stats delta       unique_processed +" << d.unique_processed << " (sent "
        << workload.unique() << "), duplicate_dropped +" << d.duplicate_dropped << " (sent "
        << workload.duplicates()
        << (t.ambiguous > 0 ? ", up to +" + std::to_string(t.ambiguous) + " from retries"
                            : std::string())
        << "; broker " << d.duplicates_broker << ", database " << d.duplicates_database
        << "), pending " << v->after.pending << "\n";
    out << "  verification       " << (v->ok ? "OK" : "FAILED") << "\n";
    for (const auto& m : v->mismatches) out << "    - " << m << "\n";
  } else {
    out << "  verification       skipped (--no-verify)\n";
  }
  const bool errors = t.gave_up > 0 || t.permanent > 0 || t.rejected > 0;
  if (errors) {
    out << "  errors             " << format_count(t.gave_up) << " events given up, "
        << format_count(t.permanent) << " refused, " << format_count(t.rejected)
        << " rejected; first: " << t.first_error << "\n";
  }
  std::cout << out.str() << std::flush;

  if (!o.json_path.empty()) {
    json status_counts = json::object();
    for (const auto& [status, count] : t.status_counts)
      status_counts[std::to_string(status)] = count;
    json j = {
        {"tool", "loadgen"},
        {"config",
         {{"url", o.url},
          {"events", w.events},
          {"duration_seconds", static_cast<double>(o.duration.count()) / 1000},
          {"connections", o.connections},
          {"batch", w.batch},
          {"duplicates", w.duplicate_ratio},
          {"within_request", w.within_request_share},
          {"topics", w.topics},
          {"payload_bytes", w.payload_bytes},
          {"rate", o.rate},
          {"seed", w.seed},
          {"run_id", w.run_id}}},
        {"events_sent", sent},
        {"unique_sent", workload.unique()},
        {"duplicates_sent", workload.duplicates()},
        {"duplicates_within_request", workload.duplicates_within_request()},
        {"duplicates_across_requests", workload.duplicates_across_requests()},
        {"requests", t.requests},
        {"retries", t.retries},
        {"connection_errors", t.connection_errors},
        {"timeouts", t.timeouts},
        {"status_counts", status_counts},
        {"answers",
         {{"accepted", t.accepted},
          {"duplicate", t.duplicates},
          {"rejected", t.rejected},
          {"failed", t.failed}}},
        {"ambiguous_event_attempts", t.ambiguous},
        {"events_given_up", t.gave_up},
        {"events_refused", t.permanent},
        {"publish_seconds", publish_seconds},
        {"requests_per_second", per_second(t.responses, publish_seconds)},
        {"events_per_second", per_second(sent, publish_seconds)},
        {"latency_ms",
         {{"p50", percentile_ms(t.latencies_us, 0.50)},
          {"p95", percentile_ms(t.latencies_us, 0.95)},
          {"p99", percentile_ms(t.latencies_us, 0.99)},
          {"max", percentile_ms(t.latencies_us, 1.0)}}},
        {"loadgen_cpu_seconds", cpu_used},
        {"samples", sampler.samples()},
    };
    if (v) {
      j["verify"] = {
          {"done", v->done},
          {"ok", v->ok},
          {"end_to_end_seconds", v->end_to_end_seconds},
          {"end_to_end_events_per_second", v->done ? per_second(sent, v->end_to_end_seconds) : 0.0},
          {"stats_before", v->before.to_json()},
          {"stats_after", v->after.to_json()},
          {"delta", v->after.minus(v->before).to_json()},
          {"mismatches", v->mismatches}};
    }
    std::ofstream file(o.json_path);
    file << j.dump(2) << "\n";
    if (!file) {
      std::cerr << "loadgen: cannot write " << o.json_path << "\n";
      return 1;
    }
  }
  return (errors || (v && !v->ok) || g_interrupted.load()) ? 1 : 0;
}

}  // namespace
}  // namespace loadgen

int main(int argc, char** argv) {
  std::optional<loadgen::Options> options;
  try {
    options = loadgen::read_options(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "loadgen: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (!options) return 0;
  std::signal(SIGINT, [](int) { loadgen::g_interrupted = true; });
  std::signal(SIGTERM, [](int) { loadgen::g_interrupted = true; });
  try {
    return loadgen::run(*options);
  } catch (const std::exception& e) {
    std::cerr << "loadgen: " << e.what() << "\n";
    return 1;
  }
}
