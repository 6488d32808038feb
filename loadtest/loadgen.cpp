// loadgen: a publisher simulator for the pipeline. Publishes a planned set of
// events (with duplicates within and across requests) over keep-alive
// connections, reports throughput and latency, then waits until the pipeline
// has stored everything and checks /stats against what it sent, exactly.
#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "format.hpp"
#include "http.hpp"
#include "loadgen_options.hpp"
#include "loadgen_report.hpp"
#include "pipeline_stats.hpp"
#include "publisher.hpp"
#include "workload.hpp"

namespace loadgen {
namespace {

using loadtest::format_count;
using loadtest::format_number;

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// What the run is about to do, on stderr.
void announce(const Options& o) {
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
}

bool write_json(const std::string& path, const nlohmann::json& results) {
  std::ofstream file(path);
  file << results.dump(2) << "\n";
  if (!file) {
    std::cerr << "loadgen: cannot write " << path << "\n";
    return false;
  }
  return true;
}

// The run's phases: the idle baseline of /stats, publishing (with /stats
// sampled meanwhile), the wait for the pipeline and the check, the report.
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
  announce(o);

  const auto start = Clock::now();
  const double cpu_start = cpu_seconds();
  StatsSampler sampler(o, start);
  const PublishResult published = publish(o, workload, sampler, start);
  RunOutcome r;
  r.cpu_seconds = cpu_seconds() - cpu_start;
  r.totals = published.totals;
  std::sort(r.totals.latencies_us.begin(), r.totals.latencies_us.end());
  r.publish_seconds = std::max(1e-9, seconds_between(published.first_send, published.end));
  r.sent = workload.planned();
  if (o.verify) {
    r.verification = verify(control, o, *before, workload.unique(), workload.duplicates(),
                            r.totals.ambiguous, published.first_send);
  }
  sampler.stop();

  std::cout << summary(o, workload, r) << std::flush;
  if (!o.json_path.empty() &&
      !write_json(o.json_path, results_json(o, workload, r, sampler.samples()))) {
    return 1;
  }
  return (r.errors() || (r.verification && !r.verification->ok) || g_interrupted.load()) ? 1 : 0;
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
