// GET /events against real servers: filters, cursor pages while events
// arrive, the indexes its statements use, the schema it waits for, and /stats
// with many topics.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <pqxx/pqxx>

#include "ingest/event_store.hpp"
#include "pipeline/timestamp.hpp"
#include "pipeline_fixture.hpp"

namespace testsupport {
namespace {

using nlohmann::json;

class EventQueries : public PipelineTest {
 protected:
  // Pages through /events with `query` (which must end in '&' or be empty),
  // returning every event_id seen, in order.
  std::vector<std::string> walk(const std::string& query, std::size_t* pages = nullptr,
                                const std::function<void()>& between_pages = {}) {
    std::vector<std::string> ids;
    std::string cursor;
    std::size_t count = 0;
    while (true) {
      std::string path = "/events?" + query;
      if (!cursor.empty()) path += "cursor=" + cursor;
      const HttpResponse response = http().get(path);
      EXPECT_EQ(response.status, 200) << response.body;
      if (response.status != 200) break;
      const json page = json::parse(response.body);
      for (const auto& e : page["events"]) ids.push_back(e["event_id"].get<std::string>());
      ++count;
      if (page["next_cursor"].is_null()) break;
      cursor = page["next_cursor"].get<std::string>();
      if (between_pages) between_pages();
    }
    if (pages != nullptr) *pages = count;
    return ids;
  }
};

TEST_F(EventQueries, EventsFilterByTopicSourceAndTimeRangeInEitherOrder) {
  start_all();
  json batch = json::array();
  for (int i = 0; i < 6; ++i) {
    json e = event(i % 2 == 0 ? "even" : "odd", "e" + std::to_string(i));
    e["source"] = i < 3 ? "low" : "high";
    e["timestamp"] = "2026-11-24T10:00:0" + std::to_string(i) + "Z";
    batch.push_back(e);
  }
  ASSERT_EQ(publish(batch).status, 200);
  wait_for_idle(6);
  EXPECT_EQ(walk("topic=even&"), (std::vector<std::string>{"e0", "e2", "e4"}));
  EXPECT_EQ(walk("topic=even&order=desc&"), (std::vector<std::string>{"e4", "e2", "e0"}));
  EXPECT_EQ(walk("source=high&"), (std::vector<std::string>{"e3", "e4", "e5"}));
  EXPECT_EQ(walk("since=2026-11-24T10:00:02Z&until=2026-11-24T11:00:04%2B01:00&"),
            (std::vector<std::string>{"e2", "e3"}));
  EXPECT_EQ(walk("topic=odd&source=low&"), (std::vector<std::string>{"e1"}));

  for (const char* bad :
       {"/events?since=yesterday", "/events?order=sideways", "/events?cursor=not-a-cursor",
        "/events?limit=-1", "/events?topic=%FF", "/events?topic=a%00b", "/events?topic=a..b",
        "/events?source=%FF", "/events?source=a%01"}) {
    const HttpResponse response = http().get(bad);
    EXPECT_EQ(response.status, 400) << bad;
    EXPECT_TRUE(json::parse(response.body).contains("error")) << bad;
  }
}

TEST_F(EventQueries, CursorPagesHaveNoGapsOrRepeatsWhileEventsArrive) {
  start_all();
  json batch = json::array();
  for (int i = 0; i < 250; ++i) {
    json e = event("page", "p" + std::to_string(1000 + i));
    // Equal timestamps in groups of ten: ties are broken by arrival order.
    e["timestamp"] = "2026-11-24T10:" + std::to_string(10 + i / 10) + ":00Z";
    batch.push_back(e);
  }
  ASSERT_EQ(publish(batch).status, 200);
  wait_for_idle(250);

  int arriving = 0;
  std::size_t pages = 0;
  const auto ids = walk("topic=page&limit=40&", &pages, [&] {
    // New events, some older than the cursor, some newer, arrive between pages.
    json more = json::array({event("page", "new-old-" + std::to_string(arriving)),
                             event("page", "new-late-" + std::to_string(arriving))});
    more[0]["timestamp"] = "2026-11-24T09:00:00Z";
    more[1]["timestamp"] = "2026-11-24T23:00:00Z";
    ASSERT_EQ(publish(more).status, 200);
    ++arriving;
  });
  EXPECT_EQ(pages, 7u);
  ASSERT_EQ(ids.size(), 250u);
  const std::set<std::string> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), 250u) << "a page repeated an event";
  for (int i = 0; i < 250; ++i) {
    EXPECT_EQ(ids[static_cast<std::size_t>(i)], "p" + std::to_string(1000 + i));
  }
  wait_for_idle(250 + 2 * arriving);  // the events that arrived during the walk
  const auto reversed = walk("topic=page&limit=40&order=desc&");
  EXPECT_EQ(reversed.size(), 250u + 2 * static_cast<std::size_t>(arriving));
}

TEST_F(EventQueries, EventQueriesUseTheirIndexes) {
  start_all();
  pqxx::connection conn(shared_postgres().url(database_));
  {
    pqxx::work tx(conn);
    tx.exec(
        "INSERT INTO events (topic, event_id, ts, source, payload, stream_seq) "
        "SELECT 'topic' || (g % 50), 'id' || g, now() - g * interval '1 second', "
        "'source' || (g % 20), '{}'::jsonb, g FROM generate_series(1, 200000) AS g");
    tx.exec("ANALYZE events");
    tx.commit();
  }
  // EXPLAIN the statement EventStore itself builds for each shape of query.
  const auto plan = [&](const ingest::EventQuery& query, const std::string& partitions = "") {
    pqxx::read_transaction tx(conn);
    const std::string sql = ingest::events_page_sql(
        query, 200000, [&](const std::string& text) { return tx.quote(text); }, partitions);
    std::string text;
    for (const auto& row : tx.exec("EXPLAIN " + sql)) text += row[0].as<std::string>() + "\n";
    return text;
  };
  const auto now = pipeline::now_utc().micros_since_epoch;
  ingest::EventQuery query;
  query.topic = "topic7";
  const std::string by_topic = plan(query);
  // Each partition's copy of the index (events_p<start>_topic_ts_stream_seq_id_idx).
  EXPECT_NE(by_topic.find("_topic_ts_stream_seq_id_idx"), std::string::npos) << by_topic;
  EXPECT_EQ(by_topic.find("Seq Scan"), std::string::npos) << by_topic;
  // Also when the page reads some partitions only (a condition on stored_at,
  // as queries/partition_map.hpp makes it): the same index, no BRIN scan.
  const std::string some = plan(query, "((stored_at >= now() - interval '1 day'))");
  EXPECT_NE(some.find("_topic_ts_stream_seq_id_idx"), std::string::npos) << some;
  EXPECT_EQ(some.find("Bitmap"), std::string::npos) << some;
  query = {};
  query.source = "source3";
  query.descending = true;
  const std::string by_source = plan(query);
  EXPECT_NE(by_source.find("_source_ts_stream_seq_id_idx"), std::string::npos) << by_source;
  EXPECT_EQ(by_source.find("Seq Scan"), std::string::npos) << by_source;
  query = {};
  query.since_micros = now - 3600'000'000LL;
  query.cursor = ingest::EventCursor{now - 7200'000'000LL, 5, 5, 200000};
  const std::string by_time = plan(query);
  EXPECT_NE(by_time.find("_ts_stream_seq_id_idx"), std::string::npos) << by_time;
  EXPECT_EQ(by_time.find("topic_ts"), std::string::npos) << by_time;
  EXPECT_EQ(by_time.find("Seq Scan"), std::string::npos) << by_time;
  std::cout << "EXPLAIN GET /events?topic=...:\n" << by_topic;
}

// The processor owns the schema: ingest on a bare database takes events but
// answers /events and /stats with 503 until a processor has created it.
TEST_F(EventQueries, IngestNeverWritesTheSchemaAndReadsWaitForIt) {
  apply_schema_ = false;
  start_ingest();
  for (const char* path : {"/events", "/stats"}) {
    const HttpResponse response = http().get(path);
    EXPECT_EQ(response.status, 503) << path << ": " << response.body;
    EXPECT_NE(json::parse(response.body)["error"].get<std::string>().find("processor"),
              std::string::npos)
        << response.body;
    EXPECT_EQ(response.header("retry-after"), "1");
  }
  const json ready = json::parse(http().get("/ready").body);
  EXPECT_EQ(ready["checks"]["schema"], "missing") << ready.dump();
  EXPECT_EQ(ready["status"], "ready") << "publishing needs no schema";
  EXPECT_EQ(publish(event("schema.wait", "a")).status, 200);
  {
    pqxx::connection conn(shared_postgres().url(database_));
    pqxx::read_transaction tx(conn);
    EXPECT_TRUE(tx.exec("SELECT to_regclass('events') IS NULL")[0][0].as<bool>())
        << "ingest created a table";
  }
  start_processor();
  wait_for_idle(1);
  EXPECT_EQ(http().get("/events?topic=schema.wait").status, 200);
  // /ready tells what the last health check (every 500 ms) found.
  EXPECT_TRUE(
      wait_until([&] { return json::parse(http().get("/ready").body)["checks"]["schema"] == "ok"; },
                 std::chrono::seconds(5)));
}

// /stats with 100,000 topics (issue 20): the STATS_MAX_TOPICS largest,
// largest first, and how many there are; the answer's size does not grow
// with the topics. (Its time is printed, not asserted: see make bench.)
TEST_F(EventQueries, StatsWithAHundredThousandTopicsNamesTheLargestAndCountsAll) {
  start_processor();
  start_ingest();
  ASSERT_EQ(publish(json::array({event("real.topic", "a"), event("real.topic", "b")})).status, 200);
  wait_for_idle(2);
  {
    pqxx::connection conn(shared_postgres().url(database_));
    pqxx::work tx(conn);
    tx.exec(
        "INSERT INTO topic_totals (topic, value) SELECT 'many.' || n, n % 1000 + 3 "
        "FROM generate_series(1, 100000) n");
    tx.commit();
  }
  const auto start = std::chrono::steady_clock::now();
  const HttpResponse response = http().get("/stats");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(response.status, 200) << response.body;
  const json stats = json::parse(response.body);
  EXPECT_EQ(stats["topics_total"], 100001);
  ASSERT_EQ(stats["topics"].size(), 100U);
  std::int64_t previous = INT64_MAX;
  for (const auto& entry : stats["topics"]) {
    const auto topic = entry["topic"].get<std::string>();
    const auto count = entry["count"].get<std::int64_t>();
    // The 100 largest: n % 1000 == 999, each 1,002.
    EXPECT_EQ(topic.rfind("many.", 0), 0U) << topic << " is not among the largest";
    EXPECT_EQ(count, 1002) << topic;
    EXPECT_LE(count, previous);
    previous = count;
  }
  EXPECT_LT(response.body.size(), 8192U);
  std::printf("[stats] 100,001 topics: %zu bytes in %.1f ms\n", response.body.size(),
              std::chrono::duration<double, std::milli>(elapsed).count());
}

}  // namespace
}  // namespace testsupport
