#include "pipeline_stats.hpp"

#include <cmath>
#include <iostream>

#include "format.hpp"

namespace loadgen {

using nlohmann::json;

json Stats::to_json() const {
  return {
      {"received", received},
      {"unique_processed", unique_processed},
      {"duplicate_dropped", duplicate_dropped},
      {"duplicates_by_stage", {{"broker", duplicates_broker}, {"database", duplicates_database}}},
      {"dead_lettered", dead_lettered},
      {"pending", pending}};
}

std::optional<Stats> read_stats(loadtest::BlockingClient& client) {
  const loadtest::HttpResponse r = client.get("/stats");
  if (r.status != 200) return std::nullopt;
  const json j = json::parse(r.body, nullptr, false);
  // "pending" is null while ingest cannot read the backlog (the broker is
  // away): no sample to verify with, as if the read had failed.
  if (!j.is_object() || !j.value("pending", json()).is_number()) return std::nullopt;
  Stats s;
  s.received = j.value("received", std::int64_t{0});
  s.unique_processed = j.value("unique_processed", std::int64_t{0});
  s.duplicate_dropped = j.value("duplicate_dropped", std::int64_t{0});
  s.dead_lettered = j.value("dead_lettered", std::int64_t{0});
  s.pending = j.value("pending", std::int64_t{0});
  if (const auto it = j.find("duplicates_by_stage"); it != j.end() && it->is_object()) {
    s.duplicates_broker = it->value("broker", std::int64_t{0});
    s.duplicates_database = it->value("database", std::int64_t{0});
  }
  return s;
}

StatsSampler::StatsSampler(const Options& o, Clock::time_point start) : start_(start) {
  if (o.sample_interval.count() > 0) thread_ = std::thread([this, o] { run(o); });
}

StatsSampler::~StatsSampler() { stop(); }

void StatsSampler::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

json StatsSampler::samples() {
  std::lock_guard<std::mutex> lock(mutex_);
  return samples_;
}

void StatsSampler::run(const Options& o) {
  loadtest::BlockingClient client(o.port, o.authorization, 5000);
  auto next = Clock::now();
  while (!stop_.load()) {
    if (const auto s = read_stats(client)) {
      std::lock_guard<std::mutex> lock(mutex_);
      const double unix_now =
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count();
      samples_.push_back({{"t", std::round(seconds_between(start_, Clock::now()) * 1000) / 1000},
                          {"unix", unix_now},
                          {"received", s->received},
                          {"unique_processed", s->unique_processed},
                          {"duplicate_dropped", s->duplicate_dropped},
                          {"pending", s->pending}});
      last_pending_ = s->pending;
    }
    next += o.sample_interval;
    while (!stop_.load() && Clock::now() < next) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

std::optional<Stats> idle_baseline(loadtest::BlockingClient& client, const Options& o) {
  const auto deadline = Clock::now() + o.drain_timeout;
  bool told = false;
  while (Clock::now() < deadline && !g_interrupted.load()) {
    const auto s = read_stats(client);
    if (s && s->pending == 0 && s->balanced()) return s;
    if (s && !told) {
      std::cerr << "loadgen: the stack is busy (pending " << s->pending
                << "); waiting for it to be idle before the baseline\n";
      told = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return std::nullopt;
}

Verification verify(loadtest::BlockingClient& client, const Options& o, const Stats& before,
                    std::uint64_t unique, std::uint64_t duplicates, std::uint64_t ambiguous,
                    Clock::time_point first_send) {
  Verification v;
  v.before = before;
  const auto deadline = Clock::now() + o.drain_timeout;
  auto next_progress = Clock::now() + std::chrono::seconds(1);
  std::optional<Stats> last;
  auto last_change = Clock::now();
  const auto u = static_cast<std::int64_t>(unique);
  const auto d_min = static_cast<std::int64_t>(duplicates);
  const auto d_max = static_cast<std::int64_t>(duplicates + ambiguous);
  while (Clock::now() < deadline && !g_interrupted.load()) {
    const auto s = read_stats(client);
    const auto now = Clock::now();
    if (s) {
      const Stats d = s->minus(before);
      v.after = *s;
      if (s->pending == 0 && s->balanced() && d.unique_processed == u &&
          d.duplicate_dropped >= d_min && d.duplicate_dropped <= d_max) {
        v.done = true;
        v.end_to_end_seconds = seconds_between(first_send, now);
        break;
      }
      // Counters only grow: past the expectation there is no way back.
      if (d.unique_processed > u || d.duplicate_dropped > d_max) break;
      const bool changed =
          !last || last->received != s->received || last->unique_processed != s->unique_processed ||
          last->duplicate_dropped != s->duplicate_dropped || last->pending != s->pending;
      if (changed) last_change = now;
      // Idle, and still short: nothing more is coming.
      if (s->pending == 0 && now - last_change > std::chrono::seconds(5)) break;
      last = s;
      if (now >= next_progress && !o.quiet) {
        std::cerr << "loadgen waiting: unique_processed +"
                  << loadtest::format_count(
                         static_cast<std::uint64_t>(std::max<std::int64_t>(d.unique_processed, 0)))
                  << "/" << loadtest::format_count(unique) << "  duplicate_dropped +"
                  << loadtest::format_count(
                         static_cast<std::uint64_t>(std::max<std::int64_t>(d.duplicate_dropped, 0)))
                  << "/" << loadtest::format_count(duplicates) << "  pending "
                  << loadtest::format_count(static_cast<std::uint64_t>(s->pending)) << "\n";
        next_progress = now + std::chrono::seconds(1);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  const Stats d = v.after.minus(before);
  if (!v.done)
    v.mismatches.push_back("the pipeline did not finish within --timeout (" +
                           std::to_string(o.drain_timeout.count() / 1000) + " s)");
  if (d.unique_processed != u) {
    v.mismatches.push_back("unique_processed grew by " + std::to_string(d.unique_processed) +
                           ", expected " + std::to_string(u));
  }
  if (d.duplicate_dropped < d_min || d.duplicate_dropped > d_max) {
    v.mismatches.push_back("duplicate_dropped grew by " + std::to_string(d.duplicate_dropped) +
                           ", expected " + std::to_string(d_min) +
                           (d_max != d_min ? " to " + std::to_string(d_max) : std::string()));
  }
  if (v.after.pending != 0) v.mismatches.push_back("pending is " + std::to_string(v.after.pending));
  if (!v.after.balanced()) {
    v.mismatches.push_back("received (" + std::to_string(v.after.received) +
                           ") != unique_processed + duplicate_dropped + dead_lettered");
  }
  if (d.dead_lettered != 0) {
    v.mismatches.push_back("dead_lettered grew by " + std::to_string(d.dead_lettered));
  }
  v.ok = v.mismatches.empty();
  return v;
}

}  // namespace loadgen
