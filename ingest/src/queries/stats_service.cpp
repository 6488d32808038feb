#include "queries/stats_service.hpp"

#include <nlohmann/json.hpp>

#include "pipeline/logging.hpp"

namespace ingest {

StatsResult StatsService::snapshot() {
  StatsResult result;
  // The broker first, the database second: a message the broker no longer
  // counts as pending was committed before it was acked, so the counters
  // read afterwards include it. (The other order can miss a batch that
  // commits and acks between the two reads, and call the pipeline idle with
  // counts still short.)
  const auto backlog = backlog_.backlog();
  PipelineCounters counters;
  try {
    if (!counters_.schema_ready()) {
      result.kind = StatsResult::Kind::kNoSchema;
      result.error = "no counters yet: the processor creates the tables when it first starts";
      return result;
    }
    counters = counters_.counters();
  } catch (const std::exception& e) {
    pipeline::log::warn("stats_query_failed", {{"error", pipeline::log::first_line(e.what())}});
    result.kind = StatsResult::Kind::kUnavailable;
    result.error = "database unavailable";
    return result;
  }
  using nlohmann::json;
  const std::int64_t duplicates = counters.duplicate_broker + counters.duplicate_database;
  const std::int64_t pending =
      backlog ? static_cast<std::int64_t>(backlog->pending + backlog->ack_pending) : 0;
  json topics = json::array();
  for (const auto& [topic, count] : counters.topics) {
    topics.push_back({{"topic", topic}, {"count", count}});
  }
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::steady_clock::now() - started_clock_);
  const json out{
      {"received", counters.unique_processed + duplicates + counters.dead_lettered + pending},
      {"unique_processed", counters.unique_processed},
      {"duplicate_dropped", duplicates},
      {"duplicates_by_stage",
       {{"broker", counters.duplicate_broker}, {"database", counters.duplicate_database}}},
      {"dead_lettered", counters.dead_lettered},
      {"pending", backlog ? json(pending) : json(nullptr)},
      {"topics", topics},
      {"topics_total", std::max<std::int64_t>(counters.topics_total,
                                              static_cast<std::int64_t>(counters.topics.size()))},
      {"uptime_seconds", uptime.count()},
      {"started_at", pipeline::format_rfc3339(started_at_)},
  };
  result.body = out.dump();
  return result;
}

}  // namespace ingest
