#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_subscribe_options.hpp"
#include "publisher.hpp"
#include "sse_subscribers.hpp"

namespace bench_subscribe {

/// What publishing did (publishing mode).
struct PublishOutcome {
  loadgen::Totals totals;
  /// Per key: when its accepted answer (the 200) came, ns after the start;
  /// 0 when none came.
  std::vector<std::int64_t> answered_ns;
  double publish_seconds = 0;
};

/// What the streams should have got (hold mode): the growth of each topic's
/// count in GET /stats while they were open.
struct HoldOutcome {
  std::map<std::string, std::int64_t> expected_by_topic;
  double held_seconds = 0;
};

/// Facts of the run besides the streams' own.
struct RunFacts {
  Clock::time_point start;
  double open_seconds = 0;   ///< to open every stream
  double drain_seconds = 0;  ///< after publishing (or holding), until every delivery came
  bool drained = false;      ///< every expected delivery came before --drain-timeout
  bool interrupted = false;  ///< SIGINT/SIGTERM cut a publishing run short
  /// The watched process's RSS (KiB): before_kib, open_kib, after_kib, peak_kib.
  nlohmann::json rss = nlohmann::json::object();
  /// Ingest's subscribe_streams_ended_total by reason, grown during the run.
  nlohmann::json stream_ends = nlohmann::json::object();
};

/// How many events subscription `i` should get, per topic count.
std::int64_t expected_for(const std::string& pattern,
                          const std::map<std::string, std::int64_t>& by_topic);

/// The results of a publishing run: events published, completeness per
/// stream and in total, latency from each 200 to each arrival.
nlohmann::json publish_report(const Options& o, const Subscriptions& subs, const PublishOutcome& p,
                              const RunFacts& f);

/// The results of a hold: completeness per stream against GET /stats.
nlohmann::json hold_report(const Options& o, const Subscriptions& subs, const HoldOutcome& h,
                           const RunFacts& f);

/// The human-readable summary of either report.
std::string summary(const nlohmann::json& report);

}  // namespace bench_subscribe
