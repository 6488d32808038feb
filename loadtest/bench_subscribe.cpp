// bench_subscribe: GET /subscribe under load. Opens N Server-Sent Events
// streams (and S that never read), publishes single events at a fixed rate
// with loadgen's engine, records when each 200 came and when each event
// reached each stream, waits (bounded) for the last deliveries, and reports
// the latency from 200 to arrival and whether every stream got exactly its
// events, each once, in order. With --hold it publishes nothing: it keeps
// the streams open and read while something else publishes (scripts/bench.sh
// runs loadgen meanwhile), then checks them against GET /stats.
//
//   bench_subscribe --subscribers=100 --rate=1000 --duration=10s
//   bench_subscribe --subscribers=100 --stalled=5 --rate=1000 --duration=10s
//   bench_subscribe --hold --subscribers=1000 --subscription=own --topic-prefix=bench.sub.
//     --topics=1000 --duration=600s --ready-file=F --watch-pid=PID   (ends on SIGTERM)
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "bench_subscribe_options.hpp"
#include "bench_subscribe_report.hpp"
#include "format.hpp"
#include "http.hpp"
#include "pipeline_stats.hpp"
#include "publisher.hpp"
#include "sse_subscribers.hpp"
#include "workload.hpp"

namespace bench_subscribe {
namespace {

using loadgen::g_interrupted;
using nlohmann::json;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A "VmRSS"-like line of /proc/PID/status, in KiB; -1 when unreadable.
long status_kib(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.compare(0, field.size() + 1, field + ":") == 0) {
      return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
    }
  }
  return -1;
}

// The watched process's RSS at the run's moments, and the highest seen.
void note_rss(const Options& o, RunFacts& f, const char* moment) {
  if (o.watch_pid <= 0) return;
  const long kib = status_kib(o.watch_pid, "VmRSS");
  if (moment != nullptr) f.rss[moment] = kib;
  f.rss["peak_kib"] = std::max(kib, f.rss.value("peak_kib", -1L));
}

// Ingest's GET /metrics: streams ended so far, by reason.
std::map<std::string, double> stream_ends(loadtest::BlockingClient& client) {
  std::map<std::string, double> ends;
  const auto r = client.get("/metrics");
  std::istringstream in(r.status == 200 ? r.body : std::string());
  const std::string name = "pipeline_subscribe_streams_ended_total{reason=\"";
  for (std::string line; std::getline(in, line);) {
    if (line.compare(0, name.size(), name) != 0) continue;
    const auto quote = line.find('"', name.size());
    const auto space = line.rfind(' ');
    if (quote == std::string::npos || space == std::string::npos) continue;
    ends[line.substr(name.size(), quote - name.size())] =
        std::strtod(line.c_str() + space, nullptr);
  }
  return ends;
}

json ends_delta(const std::map<std::string, double>& before,
                const std::map<std::string, double>& after) {
  json delta = json::object();
  for (const auto& [reason, n] : after) {
    const auto it = before.find(reason);
    delta[reason] = n - (it == before.end() ? 0.0 : it->second);
  }
  return delta;
}

// GET /stats: every topic's stored count, and the consumer's backlog.
struct TopicCounts {
  std::map<std::string, std::int64_t> by_topic;
  std::int64_t pending = 0;
};

std::optional<TopicCounts> topic_counts(loadtest::BlockingClient& client) {
  const auto r = client.get("/stats");
  if (r.status != 200) return std::nullopt;
  const json j = json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("topics") || !j["topics"].is_array()) return std::nullopt;
  if (!j.value("pending", json()).is_number()) return std::nullopt;  // null: the broker is away
  // /stats names at most STATS_MAX_TOPICS topics: a cut list is refused.
  if (j.value("topics_total", std::int64_t{0}) > static_cast<std::int64_t>(j["topics"].size())) {
    throw std::runtime_error("GET /stats lists " + std::to_string(j["topics"].size()) + " of " +
                             std::to_string(j.value("topics_total", std::int64_t{0})) +
                             " topics: start ingest with a larger STATS_MAX_TOPICS");
  }
  TopicCounts counts{{}, j["pending"].get<std::int64_t>()};
  for (const auto& t : j["topics"]) {
    if (!t.is_object() || !t.contains("topic") || !t.at("topic").is_string()) continue;
    counts.by_topic[t.at("topic").get_ref<const std::string&>()] =
        t.value("count", std::int64_t{0});
  }
  return counts;
}

void raise_fd_limit(std::size_t needed) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur >= needed) return;
  if (limit.rlim_max < needed) {
    throw std::runtime_error("needs " + std::to_string(needed) +
                             " file descriptors, the hard limit is " +
                             std::to_string(limit.rlim_max) + " (ulimit -Hn)");
  }
  limit.rlim_cur = needed;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) throw std::runtime_error("setrlimit failed");
}

void announce(const Options& o) {
  std::cerr << "bench_subscribe: " << o.subscribers << " streams ("
            << (o.assignment == Assignment::kAll ? o.pattern(0) : o.topic_prefix + "<i>") << ")"
            << (o.stalled > 0 ? " + " + std::to_string(o.stalled) + " that never read" : "")
            << " to " << o.url;
  if (o.hold) {
    std::cerr << ", holding up to " << o.duration.count() / 1000 << " s\n";
  } else {
    std::cerr << ", " << loadtest::format_number(o.rate, 0) << " events/s for "
              << loadtest::format_number(static_cast<double>(o.duration.count()) / 1000, 1)
              << " s over " << o.topics << " topics, " << o.connections << " connections, run id "
              << o.run_id << "\n";
  }
}

void progress(const Options& o, double elapsed, const Subscriptions& subs, std::int64_t published,
              std::uint64_t& last_unique, double dt) {
  if (o.quiet) return;
  const std::uint64_t unique = subs.unique_total();
  std::cerr << "bench_subscribe [" << loadtest::format_number(elapsed, 0) << "s]";
  if (published >= 0) std::cerr << " published " << loadtest::format_count(published);
  std::cerr << "  received " << loadtest::format_count(unique) << " ("
            << loadtest::format_number(static_cast<double>(unique - last_unique) / dt, 0)
            << "/s)  streams open " << subs.live_open() << "/" << o.subscribers << "\n";
  last_unique = unique;
}

// Opens every stream and notes the moments around it; writes the ready file.
void open_streams(const Options& o, Subscriptions& subs, RunFacts& f) {
  note_rss(o, f, "before_kib");
  const auto opening = Clock::now();
  subs.open(opening + o.open_timeout);
  f.open_seconds = seconds_since(opening);
  note_rss(o, f, "open_kib");
  if (!o.quiet) {
    std::cerr << "bench_subscribe: " << o.subscribers + o.stalled << " streams open in "
              << loadtest::format_number(f.open_seconds, 2) << " s\n";
  }
}

void write_ready_file(const Options& o) {
  if (o.ready_file.empty()) return;
  std::ofstream out(o.ready_file);
  out << "ready\n";
  if (!out) throw std::runtime_error("cannot write " + o.ready_file);
}

int finish(const Options& o, const json& report) {
  std::cout << summary(report) << std::flush;
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    out << report.dump(2) << "\n";
    if (!out) {
      std::cerr << "bench_subscribe: cannot write " << o.json_path << "\n";
      return 1;
    }
  }
  return report["complete"].get<bool>() ? 0 : 1;
}

loadgen::Options publisher_options(const Options& o) {
  loadgen::Options p;
  p.url = o.url;
  p.port = o.port;
  p.authorization = o.authorization;
  p.workload.events = o.max_events();
  p.workload.batch = 1;
  p.workload.duplicate_ratio = 0;
  p.workload.topics = o.topics;
  p.workload.topic_prefix = o.topic_prefix;
  p.workload.payload_bytes = o.payload_bytes;
  p.workload.run_id = o.run_id;
  p.connections = o.connections;
  p.rate = o.rate;
  p.duration = o.duration;
  p.request_timeout = o.request_timeout;
  p.sample_interval = std::chrono::milliseconds(0);
  p.max_retries = 5;
  p.verify = false;
  p.quiet = true;  // bench_subscribe prints its own progress line
  return p;
}

// Deliveries a publishing run promised: each accepted event to every stream
// whose topic it has.
std::uint64_t promised(const Options& o, const std::vector<std::int64_t>& answered_ns) {
  std::vector<std::uint64_t> per_topic(o.topics, 0);
  for (std::size_t key = 0; key < answered_ns.size(); ++key) {
    if (answered_ns[key] != 0) ++per_topic[key % o.topics];
  }
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < o.subscribers; ++i) {
    if (o.assignment == Assignment::kOwn) {
      total += per_topic[i % o.topics];
    } else {
      for (const auto n : per_topic) total += n;
    }
  }
  return total;
}

// Publishes at the fixed rate while `reader` takes the deliveries; records
// when each 200 came.
PublishOutcome publish(const Options& o, const Clock::time_point start,
                       std::atomic<std::int64_t>& published) {
  PublishOutcome p;
  p.answered_ns.assign(o.max_events(), 0);
  const loadgen::Options po = publisher_options(o);
  loadtest::Workload workload(po.workload);
  loadgen::StatsSampler no_sampling(po, Clock::now());
  const auto result = loadgen::publish(
      po, workload, no_sampling, Clock::now(), [&](std::uint64_t key, Clock::time_point answered) {
        if (key >= p.answered_ns.size()) return;
        p.answered_ns[key] = std::max<std::int64_t>(
            1, std::chrono::duration_cast<std::chrono::nanoseconds>(answered - start).count());
        ++published;
      });
  p.totals = result.totals;
  p.publish_seconds = std::chrono::duration<double>(result.end - result.first_send).count();
  return p;
}

int run_publish(const Options& o) {
  const auto start = Clock::now();
  RunFacts f;
  f.start = start;
  loadtest::BlockingClient control(o.port, o.authorization, 10000);
  const auto ends_before = stream_ends(control);
  Subscriptions subs(o, KeySpace{o.run_id + "-", o.max_events()}, start);
  open_streams(o, subs, f);
  write_ready_file(o);

  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> published{0};
  std::string reader_error;
  std::thread reader([&] {
    try {
      std::uint64_t last_unique = 0;
      auto next = Clock::now() + std::chrono::seconds(1);
      while (!stop.load()) {
        subs.poll(20);
        if (Clock::now() < next) continue;
        progress(o, seconds_since(start), subs, published.load(), last_unique, 1.0);
        next += std::chrono::seconds(1);
      }
    } catch (const std::exception& e) {
      reader_error = e.what();
    }
  });
  PublishOutcome p = publish(o, start, published);
  f.interrupted = g_interrupted.load();

  // The last deliveries: bounded, and over once no stream is left to wait for.
  const std::uint64_t expected = promised(o, p.answered_ns);
  const auto draining = Clock::now();
  while (subs.unique_total() < expected && subs.live_open() > 0 &&
         Clock::now() - draining < o.drain_timeout && !g_interrupted.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  f.drain_seconds = seconds_since(draining);
  f.drained = subs.unique_total() >= expected;
  note_rss(o, f, "after_kib");
  stop = true;
  reader.join();
  if (!reader_error.empty()) throw std::runtime_error(reader_error);
  f.stream_ends = ends_delta(ends_before, stream_ends(control));
  subs.close_all();
  return finish(o, publish_report(o, subs, p, f));
}

// What each topic gained since `before`.
std::map<std::string, std::int64_t> growth(const TopicCounts& before, const TopicCounts& after) {
  std::map<std::string, std::int64_t> out;
  for (const auto& [topic, n] : after.by_topic) {
    const auto it = before.by_topic.find(topic);
    out[topic] = n - (it == before.by_topic.end() ? 0 : it->second);
  }
  return out;
}

bool all_delivered(const Subscriptions& subs, const std::map<std::string, std::int64_t>& grown) {
  return std::all_of(subs.tallies().begin(), subs.tallies().end(), [&](const Tally& t) {
    return static_cast<std::int64_t>(t.unique) >= expected_for(t.pattern, grown);
  });
}

// After the hold: reads /stats until every stream has what its topics
// gained and nothing is pending, or --drain-timeout passes.
void drain_hold(const Options& o, Subscriptions& subs, loadtest::BlockingClient& control,
                const TopicCounts& before, HoldOutcome& h, RunFacts& f) {
  const auto draining = Clock::now();
  auto next_check = draining;
  bool read = false;
  for (;;) {
    subs.poll(50);
    if (Clock::now() >= next_check) {
      if (const auto after = topic_counts(control)) {
        h.expected_by_topic = growth(before, *after);
        read = true;
        f.drained = after->pending == 0 && all_delivered(subs, h.expected_by_topic);
      }
      next_check = Clock::now() + std::chrono::milliseconds(500);
    }
    if (f.drained || Clock::now() - draining >= o.drain_timeout) break;
  }
  if (!read) throw std::runtime_error("no usable GET /stats after the hold");
  f.drain_seconds = seconds_since(draining);
}

int run_hold(const Options& o) {
  const auto start = Clock::now();
  RunFacts f;
  f.start = start;
  loadtest::BlockingClient control(o.port, o.authorization, 10000);
  const auto ends_before = stream_ends(control);
  Subscriptions subs(o, KeySpace{}, start);
  open_streams(o, subs, f);
  const auto before = topic_counts(control);
  if (!before) throw std::runtime_error("no usable GET /stats from " + o.url);
  write_ready_file(o);

  HoldOutcome h;
  const auto holding = Clock::now();
  auto next = holding + std::chrono::seconds(1);
  std::uint64_t last_unique = 0;
  while (!g_interrupted.load() && Clock::now() - holding < o.duration) {
    subs.poll(100);
    if (Clock::now() < next) continue;
    progress(o, seconds_since(start), subs, -1, last_unique, 1.0);
    note_rss(o, f, nullptr);
    next += std::chrono::seconds(1);
  }
  h.held_seconds = seconds_since(holding);
  if (!o.quiet) std::cerr << "bench_subscribe: hold over; waiting for the last deliveries\n";
  drain_hold(o, subs, control, *before, h, f);
  note_rss(o, f, "after_kib");
  f.stream_ends = ends_delta(ends_before, stream_ends(control));
  subs.close_all();
  return finish(o, hold_report(o, subs, h, f));
}

}  // namespace
}  // namespace bench_subscribe

int main(int argc, char** argv) {
  std::optional<bench_subscribe::Options> options;
  try {
    options = bench_subscribe::read_options(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench_subscribe: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (!options) return 0;
  std::signal(SIGINT, [](int) { loadgen::g_interrupted = true; });
  std::signal(SIGTERM, [](int) { loadgen::g_interrupted = true; });
  std::signal(SIGPIPE, SIG_IGN);
  try {
    bench_subscribe::raise_fd_limit(options->subscribers + options->stalled + options->connections +
                                    64);
    bench_subscribe::announce(*options);
    return options->hold ? bench_subscribe::run_hold(*options)
                         : bench_subscribe::run_publish(*options);
  } catch (const std::exception& e) {
    std::cerr << "bench_subscribe: " << e.what() << "\n";
    return 1;
  }
}
