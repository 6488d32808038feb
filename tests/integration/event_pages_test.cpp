// GET /events over sealed partitions (issue 20), on real servers: the
// processor records the range of event time of each sealed partition, and a
// page reads only the partitions that range lets hold it. Every page, in
// either order, with any filter and cursor, is the one a query of every
// partition gives, with late and far-future timestamps among the events; and
// a partition outside a page's reach is not read at all.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "pipeline_fixture.hpp"
#include "processor/config.hpp"

namespace testsupport {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kRounds = 5;
constexpr int kPerRound = 40;

class EventPages : public PipelineTest {
 protected:
  void SetUp() override {
    PipelineTest::SetUp();
    // Partitions of a second, sealed as soon as they end.
    configure_processor_ = [](processor::ProcessorConfig& config) {
      config.partitions.interval = 1s;
      config.partitions.retention = 0ms;
      config.retention_check_interval = 200ms;
      config.partitions.seal_margin = 0ms;
    };
  }

  std::int64_t scalar(const std::string& query) {
    pqxx::connection conn(shared_postgres().url(database_));
    pqxx::nontransaction tx(conn);
    const pqxx::row row = tx.exec1(query);
    return row[0].is_null() ? 0 : row[0].as<std::int64_t>();
  }

  // Each round in a partition of its own, with event times an hour apart
  // (round r at 10:00 + r hours); round 2 holds one event of 2030 and round
  // 3 three late ones of round 0's hour.
  void publish_rounds() {
    std::int64_t stored = 0;
    for (int r = 0; r < kRounds; ++r) {
      json batch = json::array();
      for (int i = 0; i < kPerRound; ++i) {
        json e = event(i % 8 == 0 ? "pg.b" : "pg.a", std::to_string(r) + "-" + std::to_string(i));
        e["source"] = "s" + std::to_string(i % 3);
        char ts[40];
        std::snprintf(ts, sizeof ts, "2026-11-24T%02d:00:%02dZ", 10 + r, i);
        e["timestamp"] = ts;
        batch.push_back(e);
      }
      if (r == 2) batch.push_back(event("pg.a", "2-future", {{"at", "2030"}}));
      if (r == 2) batch.back()["timestamp"] = "2030-01-01T00:00:00Z";
      for (int i = 0; r == 3 && i < 3; ++i) {
        batch.push_back(event("pg.a", "3-late-" + std::to_string(i)));
        batch.back()["timestamp"] = "2026-11-24T10:00:3" + std::to_string(i) + "Z";
      }
      ASSERT_EQ(publish(batch).status, 200);
      stored += static_cast<std::int64_t>(batch.size());
      wait_for_idle(stored);
      // Past the end of the partition its rows went to (partitions of 1 s).
      const std::int64_t last =
          scalar("SELECT (extract(epoch FROM max(stored_at)) * 1000000)::bigint FROM events");
      ASSERT_TRUE(wait_until(
          [&] {
            return scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint") >
                   last + 1'000'000;
          },
          10s));
    }
  }

  // Every event_id of `query`'s pages (a query string ending in '&').
  std::vector<std::string> walk(const std::string& query) {
    std::vector<std::string> ids;
    const std::string first = "/events?" + query;
    std::string path = first;
    for (int pages = 0; pages < 1000; ++pages) {
      const HttpResponse response = http().get(path);
      EXPECT_EQ(response.status, 200) << response.body;
      if (response.status != 200) break;
      const json page = json::parse(response.body);
      for (const auto& e : page["events"]) ids.push_back(e["event_id"].get<std::string>());
      if (page["next_cursor"].is_null()) break;
      path = first;
      path += "cursor=";
      path += page["next_cursor"].get<std::string>();
    }
    return ids;
  }

  // The same events read from every partition, in the page order.
  std::vector<std::string> every_partition(const std::string& where, bool descending) {
    pqxx::connection conn(shared_postgres().url(database_));
    pqxx::nontransaction tx(conn);
    const char* dir = descending ? " DESC" : "";
    std::vector<std::string> ids;
    for (const auto& row : tx.exec("SELECT event_id FROM events WHERE " + where + " ORDER BY ts" +
                                   dir + ", stream_seq" + dir + ", id" + dir))
      ids.push_back(row[0].as<std::string>());
    return ids;
  }
};

TEST_F(EventPages, PagesOverSealedPartitionsAreThoseOfEveryPartition) {
  start_all();
  publish_rounds();
  // The rounds' partitions sealed, each with the range of its rows' ts.
  const std::string sealed_with_rows =
      "SELECT count(*) FROM sealed_partitions WHERE ts_min IS NOT NULL";
  ASSERT_TRUE(wait_until([&] { return scalar(sealed_with_rows) >= kRounds; }, 20s))
      << scalar(sealed_with_rows) << " partitions with rows sealed";
  EXPECT_EQ(scalar("SELECT count(*) FROM sealed_partitions s, LATERAL (SELECT min(ts) AS lo, "
                   "max(ts) AS hi FROM events e WHERE e.tableoid = s.partition::regclass) r "
                   "WHERE s.ts_min IS DISTINCT FROM r.lo OR s.ts_max IS DISTINCT FROM r.hi"),
            0)
      << "a sealed partition's recorded range is not that of its rows";

  const std::vector<std::pair<std::string, std::string>> queries = {
      {"", "TRUE"},
      {"topic=pg.a&limit=7&", "topic = 'pg.a'"},
      {"topic=pg.b&limit=2&", "topic = 'pg.b'"},
      {"source=s1&limit=9&", "source = 's1'"},
      {"since=2026-11-24T11:00:05Z&until=2026-11-24T13:00:00Z&limit=5&",
       "ts >= '2026-11-24T11:00:05Z' AND ts < '2026-11-24T13:00:00Z'"},
      {"topic=pg.a&since=2026-11-24T10:00:20Z&limit=3&",
       "topic = 'pg.a' AND ts >= '2026-11-24T10:00:20Z'"},
      {"until=2026-11-24T10:30:00Z&limit=4&", "ts < '2026-11-24T10:30:00Z'"},
  };
  for (const auto& [query, where] : queries) {
    for (const bool descending : {false, true}) {
      const std::string q = query + (descending ? "order=desc&" : "");
      const auto expected = every_partition(where, descending);
      EXPECT_FALSE(expected.empty()) << where;
      EXPECT_EQ(walk(q), expected) << q;
    }
  }
}

// A row slipped by hand into the oldest sealed partition, with a time past
// every other event's (and past the range recorded for it): a page that the
// ranges say it cannot reach does not read that partition. (Only a test can
// put a row there: a sealed partition gets none.)
TEST_F(EventPages, APartitionOutsideAPagesReachIsNotRead) {
  start_all();
  publish_rounds();
  ASSERT_TRUE(wait_until(
      [&] {
        return scalar("SELECT count(*) FROM sealed_partitions WHERE ts_min IS NOT NULL") >= kRounds;
      },
      20s));
  {
    pqxx::connection conn(shared_postgres().url(database_));
    pqxx::nontransaction tx(conn);
    tx.exec(
        "INSERT INTO events (topic, event_id, ts, source, stream_created, stream_seq, stored_at) "
        "SELECT 'pg.a', 'slipped', '2031-01-01Z', 's0', 0, 999999, stored_at FROM events "
        "WHERE event_id = '0-1'");
  }
  ASSERT_EQ(every_partition("topic = 'pg.a'", true).front(), "slipped");
  // The page is read from the partitions its ranges can reach (the 2030
  // event's first): the slipped row is not among them.
  const auto page = [&] {
    const json body = json::parse(http().get("/events?topic=pg.a&order=desc&limit=3").body);
    return body["events"][0]["event_id"].get<std::string>();
  };
  EXPECT_TRUE(wait_until([&] { return page() == "2-future"; }, 5s)) << page();
  // Where its partition's range does reach (the oldest events first), it is
  // read: the slipped row is one of pg.a's events there.
  const json oldest = json::parse(http().get("/events?topic=pg.a&limit=500").body);
  ASSERT_FALSE(oldest["events"].empty());
  EXPECT_EQ(oldest["events"].back()["event_id"], "slipped");
}

}  // namespace
}  // namespace testsupport
