// The transport-free services behind GET /events, /stats and /ready, each
// against a fake of what it reads: no HTTP, no broker, no database.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "health/readiness.hpp"
#include "queries/event_queries.hpp"
#include "queries/stats_service.hpp"

namespace ingest {
namespace {

using nlohmann::json;

struct FakeReader final : EventReader {
  bool schema = true;
  bool fail = false;
  std::vector<EventQuery> queries;
  EventPage page;
  bool schema_ready() override { return schema; }
  EventPage events(const EventQuery& query) override {
    if (fail) throw std::runtime_error("connection lost");
    queries.push_back(query);
    return page;
  }
};

EventQueryService::Params params(std::map<std::string, std::string> values) {
  return [values = std::move(values)](const std::string& name) -> std::optional<std::string> {
    const auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

TEST(EventQueryService, PassesEveryParameterToTheReader) {
  FakeReader reader;
  EventQueryService service(reader, 256);
  const auto result = service.run(params({{"topic", "orders.created"},
                                          {"source", "shop"},
                                          {"since", "2026-11-24T10:00:00Z"},
                                          {"until", "2026-11-24T11:00:00.5Z"},
                                          {"order", "desc"},
                                          {"limit", "7"},
                                          {"format", "cloudevents"}}));
  ASSERT_EQ(result.kind, EventQueryResult::Kind::kPage) << result.error;
  ASSERT_EQ(reader.queries.size(), 1U);
  const EventQuery& query = reader.queries[0];
  EXPECT_EQ(query.topic, "orders.created");
  EXPECT_EQ(query.source, "shop");
  EXPECT_EQ(query.since_micros, 1795514400000000LL);
  EXPECT_EQ(query.until_micros, 1795518000500000LL);
  EXPECT_TRUE(query.descending);
  EXPECT_EQ(query.limit, 7U);
  EXPECT_FALSE(query.cursor);
  EXPECT_TRUE(query.cloudevents);
  ASSERT_EQ(service.run(params({{"format", "json"}})).kind, EventQueryResult::Kind::kPage);
  EXPECT_FALSE(reader.queries.back().cloudevents);
}

TEST(EventQueryService, NamesTheWrongParameterAndNeverAsksTheReader) {
  FakeReader reader;
  EventQueryService service(reader, 16);
  const std::vector<std::pair<std::map<std::string, std::string>, std::string>> cases = {
      {{{"topic", "a..b"}}, "topic"},
      {{{"topic", std::string(17, 'a')}}, "topic"},
      {{{"source", ""}}, "source"},
      {{{"since", "yesterday"}}, "since"},
      {{{"until", "2026-02-30T00:00:00Z"}}, "until"},
      {{{"order", "up"}}, "order"},
      {{{"limit", "0"}}, "limit"},
      {{{"limit", "1001"}}, "limit"},
      {{{"limit", "10x"}}, "limit"},
      {{{"cursor", "not-a-cursor"}}, "cursor"},
      {{{"format", "xml"}}, "format"},
      {{{"cursor", EventCursor{1, 2, 3, 4}.encode(false)}, {"order", "desc"}}, "cursor"},
  };
  for (const auto& [values, parameter] : cases) {
    const auto result = service.run(params(values));
    EXPECT_EQ(result.kind, EventQueryResult::Kind::kInvalid) << parameter;
    EXPECT_EQ(result.error.rfind(parameter, 0), 0U) << result.error;
  }
  EXPECT_TRUE(reader.queries.empty());
}

TEST(EventQueryService, RendersThePageAndItsCursor) {
  FakeReader reader;
  reader.page.events_json = R"([{"event_id":"a"},{"event_id":"b"}])";
  reader.page.count = 2;
  reader.page.next = EventCursor{10, 20, 30, 40};
  EventQueryService service(reader, 256);
  const auto result = service.run(params({{"limit", "2"}}));
  ASSERT_EQ(result.kind, EventQueryResult::Kind::kPage);
  const json body = json::parse(result.body);
  EXPECT_EQ(body["count"], 2);
  EXPECT_EQ(body["events"][1]["event_id"], "b");
  const auto next = EventCursor::decode(body["next_cursor"].get<std::string>(), false);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->stream_seq, 20);
  EXPECT_EQ(next->snapshot_id, 40);

  reader.page.next.reset();
  EXPECT_TRUE(json::parse(service.run(params({})).body)["next_cursor"].is_null());
}

TEST(EventQueryService, NoSchemaAndDatabaseFailuresAreTheirOwnOutcomes) {
  FakeReader reader;
  EventQueryService service(reader, 256);
  reader.schema = false;
  auto result = service.run(params({}));
  EXPECT_EQ(result.kind, EventQueryResult::Kind::kNoSchema);
  EXPECT_TRUE(reader.queries.empty());
  reader.schema = true;
  reader.fail = true;
  result = service.run(params({}));
  EXPECT_EQ(result.kind, EventQueryResult::Kind::kUnavailable);
  EXPECT_EQ(result.error, "database unavailable");
}

// Records the order of the reads: the broker's backlog must come first.
struct StatsSources final : CounterReader, BacklogReader {
  std::vector<std::string> calls;
  bool schema = true;
  bool fail = false;
  std::optional<pipeline::nats::ConsumerBacklog> pending;
  PipelineCounters values;
  bool schema_ready() override { return schema; }
  PipelineCounters counters() override {
    calls.emplace_back("counters");
    if (fail) throw std::runtime_error("gone");
    return values;
  }
  std::optional<pipeline::nats::ConsumerBacklog> backlog() override {
    calls.emplace_back("backlog");
    return pending;
  }
};

TEST(StatsService, ReceivedIsTheSumOfItsPartsWithTheBacklogReadFirst) {
  StatsSources sources;
  sources.values.unique_processed = 100;
  sources.values.duplicate_broker = 7;
  sources.values.duplicate_database = 3;
  sources.values.dead_lettered = 2;
  sources.values.topics = {{"a", 60}, {"b", 40}};
  sources.pending = pipeline::nats::ConsumerBacklog{5, 4};
  StatsService service(sources, sources);
  const StatsResult result = service.snapshot();
  ASSERT_EQ(result.kind, StatsResult::Kind::kOk);
  EXPECT_EQ(sources.calls, (std::vector<std::string>{"backlog", "counters"}));
  const json body = json::parse(result.body);
  EXPECT_EQ(body["received"], 100 + 10 + 2 + 9);
  EXPECT_EQ(body["duplicate_dropped"], 10);
  EXPECT_EQ(body["duplicates_by_stage"]["broker"], 7);
  EXPECT_EQ(body["pending"], 9);
  EXPECT_EQ(body["topics"][1], (json{{"topic", "b"}, {"count", 40}}));
}

TEST(StatsService, UnknownBacklogIsNullAndFailuresAreOutcomes) {
  StatsSources sources;
  StatsService service(sources, sources);
  EXPECT_TRUE(json::parse(service.snapshot().body)["pending"].is_null());
  sources.fail = true;
  EXPECT_EQ(service.snapshot().kind, StatsResult::Kind::kUnavailable);
  sources.schema = false;
  EXPECT_EQ(service.snapshot().kind, StatsResult::Kind::kNoSchema);
}

struct Probes final : BrokerProbe, DatabaseProbe {
  BrokerStatus broker{true, true, true};
  bool db = true;
  bool schema = true;
  BrokerStatus probe() override { return broker; }
  bool reachable() override { return db; }
  bool schema_ready() override { return schema; }
};

TEST(ReadinessService, ReadyOnlyWhenBrokerStreamAndDatabaseAnswer) {
  Probes probes;
  ReadinessService service(probes, probes);
  EXPECT_TRUE(service.check(false).ready);
  EXPECT_FALSE(service.check(true).ready) << "draining";
  EXPECT_EQ(json::parse(service.check(true).body)["checks"]["draining"], true);

  probes.schema = false;
  auto result = service.check(false);
  EXPECT_TRUE(result.ready) << "publishing needs no schema";
  EXPECT_EQ(json::parse(result.body)["checks"]["schema"], "missing");

  probes.broker = {true, false, false};
  result = service.check(false);
  EXPECT_FALSE(result.ready);
  EXPECT_EQ(json::parse(result.body)["checks"]["nats"], "not responding");
  EXPECT_EQ(json::parse(result.body)["checks"]["stream"], "unknown");

  probes.broker = {false, false, false};
  EXPECT_EQ(json::parse(service.check(false).body)["checks"]["nats"], "disconnected");

  probes.broker = {true, true, false};
  EXPECT_EQ(json::parse(service.check(false).body)["checks"]["stream"], "missing");

  probes.broker = {true, true, true};
  probes.db = false;
  result = service.check(false);
  EXPECT_FALSE(result.ready);
  EXPECT_EQ(json::parse(result.body)["checks"]["postgres"], "not responding");
  EXPECT_EQ(json::parse(result.body)["status"], "not ready");
}

}  // namespace
}  // namespace ingest
