#include "bench_subscribe_report.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "format.hpp"

namespace bench_subscribe {
namespace {

using loadtest::format_count;
using loadtest::format_number;
using nlohmann::json;

// Sorts `us` (microseconds) and gives its percentiles in milliseconds.
json latency_json(std::vector<std::uint32_t>& us) {
  std::sort(us.begin(), us.end());
  const auto at = [&](double q) {
    if (us.empty()) return 0.0;
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(us.size())));
    return us[std::clamp<std::size_t>(rank, 1, us.size()) - 1] / 1000.0;
  };
  double sum = 0;
  for (const auto v : us) sum += v;
  return {{"count", us.size()},
          {"p50", at(0.50)},
          {"p90", at(0.90)},
          {"p99", at(0.99)},
          {"p999", at(0.999)},
          {"max", at(1.0)},
          {"mean", us.empty() ? 0.0 : sum / static_cast<double>(us.size()) / 1000.0}};
}

// The counts that must all be 0, summed over the streams.
struct Completeness {
  std::uint64_t expected = 0;
  std::uint64_t received = 0;  ///< of the expected ones
  std::uint64_t missing = 0;
  std::uint64_t repeated = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t wrong_topic = 0;
  std::uint64_t foreign = 0;
  std::uint64_t extra = 0;  ///< received but not expected (no 200, or not in /stats)
  std::uint64_t incomplete_streams = 0;
  std::uint64_t ended_early = 0;

  void add(const Tally& t, std::uint64_t expected_here, std::uint64_t received_here) {
    const std::uint64_t missing_here = expected_here - std::min(expected_here, received_here);
    expected += expected_here;
    received += received_here;
    missing += missing_here;
    repeated += t.repeated;
    out_of_order += t.out_of_order;
    wrong_topic += t.wrong_topic;
    foreign += t.foreign;
    extra += t.unique - std::min(t.unique, received_here);
    ended_early += t.ended ? 1 : 0;
    if (missing_here + t.repeated + t.out_of_order + t.wrong_topic > 0 || t.ended) {
      ++incomplete_streams;
    }
  }
  bool ok() const {
    return missing + repeated + out_of_order + wrong_topic + incomplete_streams == 0 &&
           expected > 0;
  }
  json to_json() const {
    return {{"expected", expected},
            {"received", received},
            {"missing", missing},
            {"repeated", repeated},
            {"out_of_order", out_of_order},
            {"wrong_topic", wrong_topic},
            {"foreign", foreign},
            {"unexpected", extra},
            {"streams_incomplete", incomplete_streams},
            {"streams_ended_early", ended_early}};
  }
};

json stream_json(std::size_t i, const Tally& t, std::uint64_t expected, std::uint64_t received) {
  json j = {{"stream", i},
            {"topic", t.pattern},
            {"expected", expected},
            {"received", received},
            {"missing", expected - std::min(expected, received)},
            {"repeated", t.repeated},
            {"out_of_order", t.out_of_order},
            {"wrong_topic", t.wrong_topic}};
  if (t.foreign > 0) j["foreign"] = t.foreign;
  if (t.unique > received) j["unexpected"] = t.unique - received;
  if (t.ended) j["ended"] = {{"after_seconds", t.ended_at}, {"why", t.end_reason}};
  return j;
}

json config_json(const Options& o) {
  json c = {{"url", o.url},
            {"subscribers", o.subscribers},
            {"stalled", o.stalled},
            {"subscription", o.assignment == Assignment::kAll ? "all" : "own"},
            {"topic_prefix", o.topic_prefix},
            {"topics", o.topics},
            {"run_id", o.run_id}};
  if (o.stalled > 0) c["stalled_rcvbuf"] = o.stalled_rcvbuf;
  if (!o.hold) {
    c["rate"] = o.rate;
    c["duration_seconds"] = static_cast<double>(o.duration.count()) / 1000;
    c["connections"] = o.connections;
    c["payload_bytes"] = o.payload_bytes;
  }
  return c;
}

json facts_json(const Subscriptions& subs, const RunFacts& f) {
  return {{"open_seconds", f.open_seconds},
          {"drain_seconds", f.drain_seconds},
          {"drained", f.drained},
          {"interrupted", f.interrupted},
          {"stalled_admitted", subs.stalled_admitted()},
          {"stalled_hung_up_after_seconds", subs.stalled_hangups()},
          {"pings", subs.pings()},
          {"bytes_received", subs.bytes_total()},
          {"ingest_rss_kib", f.rss},
          {"ingest_stream_ends", f.stream_ends}};
}

json publish_json(const PublishOutcome& p) {
  const loadgen::Totals& t = p.totals;
  json status = json::object();
  for (const auto& [code, count] : t.status_counts) status[std::to_string(code)] = count;
  std::vector<std::uint32_t> http = t.latencies_us;
  return {
      {"requests", t.requests},
      {"status_counts", status},
      {"accepted", t.accepted},
      {"duplicates", t.duplicates},
      {"failed", t.failed},
      {"errors", t.connection_errors + t.timeouts + t.permanent + t.gave_up},
      {"first_error", t.first_error},
      {"publish_seconds", p.publish_seconds},
      {"events_per_second", static_cast<double>(t.accepted) / std::max(p.publish_seconds, 1e-9)},
      {"http_latency_ms", latency_json(http)}};
}

// p50/p99/max of the arrivals of the events answered in each second.
json latency_by_second(std::vector<std::vector<std::uint32_t>>& seconds) {
  json out = json::array();
  for (std::size_t s = 0; s < seconds.size(); ++s) {
    if (seconds[s].empty()) continue;
    json l = latency_json(seconds[s]);
    out.push_back({{"second", s},
                   {"count", l["count"]},
                   {"p50", l["p50"]},
                   {"p99", l["p99"]},
                   {"max", l["max"]}});
  }
  return out;
}

}  // namespace

std::int64_t expected_for(const std::string& pattern,
                          const std::map<std::string, std::int64_t>& by_topic) {
  if (pattern.find_first_of("*>") == std::string::npos) {
    const auto it = by_topic.find(pattern);
    return it == by_topic.end() ? 0 : it->second;
  }
  std::int64_t n = 0;
  for (const auto& [topic, count] : by_topic) {
    if (topic_matches(pattern, topic)) n += count;
  }
  return n;
}

json publish_report(const Options& o, const Subscriptions& subs, const PublishOutcome& p,
                    const RunFacts& f) {
  std::vector<std::uint32_t> latencies;
  std::vector<std::vector<std::uint32_t>> by_second;
  std::uint64_t before_answer = 0;
  Completeness all;
  json streams = json::array();
  const auto& tallies = subs.tallies();
  for (std::size_t i = 0; i < tallies.size(); ++i) {
    const Tally& t = tallies[i];
    const bool own = o.assignment == Assignment::kOwn;
    std::uint64_t expected = 0;
    std::uint64_t received = 0;
    for (std::uint64_t key = own ? i % o.topics : 0; key < p.answered_ns.size();
         key += own ? o.topics : 1) {
      const std::int64_t answered = p.answered_ns[key];
      if (answered == 0) continue;  // no 200: nothing promised
      ++expected;
      const std::int64_t arrived = t.arrival_ns[key / t.stride];
      if (arrived == 0) continue;
      ++received;
      std::int64_t delay = arrived - answered;
      if (delay < 0) {
        ++before_answer;  // the event came before its 200 was read
        delay = 0;
      }
      const auto us = static_cast<std::uint32_t>(std::min<std::int64_t>(delay / 1000, UINT32_MAX));
      latencies.push_back(us);
      const auto second = static_cast<std::size_t>(answered / 1000000000);
      if (by_second.size() <= second) by_second.resize(second + 1);
      by_second[second].push_back(us);
    }
    all.add(t, expected, received);
    streams.push_back(stream_json(i, t, expected, received));
  }
  json report = {{"tool", "bench_subscribe"},
                 {"mode", "publish"},
                 {"config", config_json(o)},
                 {"events_published", p.totals.accepted},
                 {"publish", publish_json(p)},
                 {"deliveries", all.to_json()},
                 {"arrived_before_answer", before_answer},
                 {"latency_ms", latency_json(latencies)},
                 {"latency_by_second", latency_by_second(by_second)},
                 {"run", facts_json(subs, f)},
                 {"per_subscriber", streams}};
  report["complete"] = all.ok() && f.drained && !f.interrupted;
  return report;
}

json hold_report(const Options& o, const Subscriptions& subs, const HoldOutcome& h,
                 const RunFacts& f) {
  Completeness all;
  json streams = json::array();
  const auto& tallies = subs.tallies();
  for (std::size_t i = 0; i < tallies.size(); ++i) {
    const Tally& t = tallies[i];
    const auto expected = static_cast<std::uint64_t>(
        std::max<std::int64_t>(0, expected_for(t.pattern, h.expected_by_topic)));
    const std::uint64_t received = std::min(t.unique, expected);
    all.add(t, expected, received);
    streams.push_back(stream_json(i, t, expected, received));
  }
  json report = {{"tool", "bench_subscribe"},
                 {"mode", "hold"},
                 {"config", config_json(o)},
                 {"held_seconds", h.held_seconds},
                 {"events_expected_from", "GET /stats topic counts, before and after"},
                 {"deliveries", all.to_json()},
                 {"run", facts_json(subs, f)},
                 {"per_subscriber", streams}};
  report["complete"] = all.ok() && all.extra == 0 && f.drained;
  return report;
}

std::string summary(const json& r) {
  std::ostringstream out;
  const json& c = r["config"];
  const json& d = r["deliveries"];
  const json& run = r["run"];
  out << "\nbench_subscribe summary (" << r["mode"].get<std::string>() << ", run id "
      << c["run_id"].get<std::string>() << ")\n";
  out << "  streams            " << c["subscribers"].get<std::size_t>() << " reading ("
      << c["subscription"].get<std::string>() << ", topics " << c["topic_prefix"].get<std::string>()
      << "0.." << c["topics"].get<std::size_t>() - 1 << "), " << c["stalled"].get<std::size_t>()
      << " stalled; opened in " << format_number(run["open_seconds"].get<double>(), 2) << " s\n";
  if (r.contains("publish")) {
    const json& p = r["publish"];
    out << "  published          " << format_count(r["events_published"].get<std::uint64_t>())
        << " events accepted in " << format_number(p["publish_seconds"].get<double>(), 2) << " s ("
        << format_number(p["events_per_second"].get<double>(), 0) << "/s), "
        << format_count(p["errors"].get<std::uint64_t>()) << " errors\n";
  } else {
    out << "  held               " << format_number(r["held_seconds"].get<double>(), 1) << " s\n";
  }
  out << "  deliveries         expected " << format_count(d["expected"].get<std::uint64_t>())
      << ", received " << format_count(d["received"].get<std::uint64_t>()) << "; missing "
      << d["missing"] << ", repeated " << d["repeated"] << ", out of order " << d["out_of_order"]
      << ", wrong topic " << d["wrong_topic"] << ", unexpected " << d["unexpected"]
      << "; streams incomplete " << d["streams_incomplete"] << ", ended early "
      << d["streams_ended_early"] << "\n";
  if (r.contains("latency_ms")) {
    const json& l = r["latency_ms"];
    out << "  200 -> arrival     p50 " << format_number(l["p50"].get<double>(), 1) << " ms, p90 "
        << format_number(l["p90"].get<double>(), 1) << " ms, p99 "
        << format_number(l["p99"].get<double>(), 1) << " ms, max "
        << format_number(l["max"].get<double>(), 1) << " ms ("
        << format_count(l["count"].get<std::uint64_t>()) << ")\n";
  }
  out << "  drain              " << format_number(run["drain_seconds"].get<double>(), 2) << " s"
      << (run["drained"].get<bool>() ? "" : " (--drain-timeout passed)") << "\n";
  if (!run["ingest_rss_kib"].empty())
    out << "  ingest RSS (KiB)   " << run["ingest_rss_kib"].dump() << "\n";
  if (!run["ingest_stream_ends"].empty()) {
    out << "  ingest ends        " << run["ingest_stream_ends"].dump() << "\n";
  }
  out << "  result             " << (r["complete"].get<bool>() ? "COMPLETE" : "INCOMPLETE") << "\n";
  return out.str();
}

}  // namespace bench_subscribe
