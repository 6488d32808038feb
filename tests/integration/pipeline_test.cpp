// End-to-end tests: real nats-server, real PostgreSQL, the real ingest and
// processor code, talking HTTP to ingest.
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "pipeline/database.hpp"
#include "pipeline/event.hpp"
#include "pipeline/jetstream.hpp"
#include "pipeline/timestamp.hpp"
#include "pipeline_fixture.hpp"
#include "processor/batch_writer.hpp"

namespace testsupport {
namespace {

using nlohmann::json;

class Pipeline : public PipelineTest {
 protected:
  void SetUp() override {
    PipelineTest::SetUp();
    start_processor();
    start_ingest();
  }
};

// Messages on the stream that no retry can fix (something other than
// ingest wrote them) are kept in dead_letters with the reason, acked, and
// counted; the events behind them still flow.
TEST_F(Pipeline, PoisonMessagesAreDeadLetteredAndTheStreamKeepsFlowing) {
  auto conn = pipeline::nats::connect(nats_->url(), "poison-test", std::chrono::seconds(5));
  auto js = pipeline::nats::jetstream(conn.get());
  const std::string poisons[] = {
      "not json at all",
      R"({"topic":"t","event_id":"no-timestamp","source":"s","payload":{}})",
      R"({"topic":"bad topic","event_id":"x","timestamp":"2026-11-24T10:00:00Z","source":"s"})",
  };
  for (const auto& body : poisons) {
    jsPubAck* ack = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    ASSERT_EQ(js_Publish(&ack, js.get(), "events.poison", body.data(),
                         static_cast<int>(body.size()), nullptr, &code),
              NATS_OK);
    jsPubAck_Destroy(ack);
  }
  ASSERT_EQ(publish(event("after", "still-stored")).status, 200);

  json last;
  ASSERT_TRUE(wait_until(
      [&] {
        last = stats();
        return last["dead_lettered"] == 3 && last["unique_processed"] == 1 && last["pending"] == 0;
      },
      std::chrono::seconds(30)))
      << last.dump();
  EXPECT_EQ(last["received"], 4) << last.dump();
  EXPECT_EQ(count_rows("topic = 'after'"), 1);

  pqxx::connection db(shared_postgres().url(database_));
  pqxx::read_transaction tx(db);
  const pqxx::result letters = tx.exec(
      "SELECT subject, reason, convert_from(raw, 'UTF8') FROM dead_letters ORDER BY stream_seq");
  ASSERT_EQ(letters.size(), 3u);
  for (std::size_t i = 0; i < letters.size(); ++i) {
    EXPECT_EQ(letters[i][0].as<std::string>(), "events.poison");
    EXPECT_FALSE(letters[i][1].as<std::string>().empty());
    EXPECT_EQ(letters[i][2].as<std::string>(), poisons[i]);
  }
  EXPECT_NE(letters[1][1].as<std::string>().find("timestamp"), std::string::npos)
      << letters[1][1].as<std::string>();
  EXPECT_NE(letters[2][1].as<std::string>().find("topic"), std::string::npos)
      << letters[2][1].as<std::string>();
}

TEST_F(Pipeline, HealthAnswers) {
  const HttpResponse response = http().get("/health");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(json::parse(response.body)["status"], "ok");
}

TEST_F(Pipeline, PublishedEventAppearsInEvents) {
  const HttpResponse response = publish(
      event("orders", "o-1", {{"amount", 42}, {"note", "quote \" and \\ backslash {x,y}"}}));
  ASSERT_EQ(response.status, 200) << response.body;
  const json body = json::parse(response.body);
  EXPECT_EQ(body["received"], 1);
  EXPECT_EQ(body["accepted"], 1);
  EXPECT_EQ(body["duplicates"], 0);
  EXPECT_EQ(body["results"][0]["status"], "accepted");

  wait_for_idle(1);
  const HttpResponse events = http().get("/events?topic=orders");
  ASSERT_EQ(events.status, 200) << events.body;
  const json list = json::parse(events.body);
  ASSERT_EQ(list["count"], 1);
  const json& stored = list["events"][0];
  EXPECT_EQ(stored["topic"], "orders");
  EXPECT_EQ(stored["event_id"], "o-1");
  EXPECT_EQ(stored["timestamp"], "2026-11-24T10:00:00.000000Z");
  EXPECT_EQ(stored["source"], "tests");
  EXPECT_EQ(stored["payload"]["amount"], 42);
  EXPECT_EQ(stored["payload"]["note"], "quote \" and \\ backslash {x,y}");
  EXPECT_TRUE(stored.contains("stored_at"));
}

TEST_F(Pipeline, SameEventTwiceIsStoredOnceAndCountedAsDuplicate) {
  ASSERT_EQ(publish(event("t", "same")).status, 200);
  const HttpResponse second = publish(event("t", "same", {{"other", "payload"}}));
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(json::parse(second.body)["results"][0]["status"], "duplicate");

  const json s = wait_for_idle(1);
  EXPECT_EQ(s["received"], 2);
  EXPECT_EQ(s["unique_processed"], 1);
  EXPECT_EQ(s["duplicate_dropped"], 1);
  EXPECT_EQ(s["duplicates_by_stage"]["broker"], 1);
  EXPECT_EQ(count_rows(), 1);
  // First write wins: the duplicate's payload did not replace the stored one.
  EXPECT_EQ(count_rows("payload = '{}'::jsonb"), 1);
}

TEST_F(Pipeline, SameEventIdInTwoTopicsIsTwoEvents) {
  const HttpResponse response = publish(json::array({event("a", "id-1"), event("b", "id-1")}));
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(json::parse(response.body)["accepted"], 2);
  const json s = wait_for_idle(2);
  EXPECT_EQ(s["duplicate_dropped"], 0);
  ASSERT_EQ(s["topics"].size(), 2u);
  EXPECT_EQ(s["topics"][0], (json{{"topic", "a"}, {"count", 1}}));
  EXPECT_EQ(s["topics"][1], (json{{"topic", "b"}, {"count", 1}}));
}

TEST_F(Pipeline, FiftyConcurrentPublishesOfOneEventStoreOneRow) {
  const std::string body = event("race", "only-one").dump();
  std::vector<std::thread> threads;
  threads.reserve(50);
  std::vector<int> statuses(50);
  const std::uint16_t port = ingest_->port();
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&, i] {
      HttpClient client(port);
      statuses[static_cast<std::size_t>(i)] = client.post("/publish", body).status;
    });
  }
  for (auto& t : threads) t.join();
  for (const int status : statuses) EXPECT_EQ(status, 200);
  const json s = wait_for_idle(1);
  EXPECT_EQ(s["received"], 50);
  EXPECT_EQ(s["duplicate_dropped"], 49);
  EXPECT_EQ(count_rows(), 1);
}

TEST_F(Pipeline, RestartKeepsDataAndStillRejectsOldDuplicates) {
  ASSERT_EQ(publish(json::array({event("r", "1"), event("r", "2")})).status, 200);
  wait_for_idle(2);
  stop_ingest();
  stop_processor();
  start_processor();
  start_ingest();

  const HttpResponse again = publish(event("r", "1"));
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(json::parse(again.body)["results"][0]["status"], "duplicate");
  const json s = wait_for_idle(2);
  EXPECT_EQ(s["received"], 3);
  EXPECT_EQ(s["duplicate_dropped"], 1);
  EXPECT_EQ(count_rows(), 2);
}

// With the broker's window over, the database's UNIQUE constraint is what
// catches the repeat.
class ShortWindowPipeline : public PipelineTest {
 protected:
  void SetUp() override {
    stream_.duplicate_window = std::chrono::milliseconds(200);
    PipelineTest::SetUp();
    start_processor();
    start_ingest();
  }
};

TEST_F(ShortWindowPipeline, DatabaseCatchesDuplicatesAfterTheBrokerWindow) {
  ASSERT_EQ(publish(event("w", "late")).status, 200);
  wait_for_idle(1);
  // Waiting for time to pass is the point here: the broker forgets the id.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  const HttpResponse again = publish(event("w", "late", {{"changed", true}}));
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(json::parse(again.body)["results"][0]["status"], "accepted");
  const json s = wait_for_idle(1);
  EXPECT_EQ(s["duplicates_by_stage"]["database"], 1);
  EXPECT_EQ(s["duplicate_dropped"], 1);
  EXPECT_EQ(count_rows(), 1);
  EXPECT_EQ(count_rows("payload = '{}'::jsonb"), 1);  // first write wins
}

TEST_F(Pipeline, TwentyThousandEventsWithThirtyPercentDuplicates) {
  constexpr int kUnique = 14000;
  constexpr int kDuplicates = 6000;
  std::vector<json> events;
  events.reserve(kUnique + kDuplicates);
  for (int i = 0; i < kUnique; ++i) {
    events.push_back(event("load." + std::to_string(i % 5), "e-" + std::to_string(i)));
  }
  std::mt19937 random(42);
  for (int i = 0; i < kDuplicates; ++i) events.push_back(events[random() % kUnique]);
  std::shuffle(events.begin(), events.end(), random);

  // Eight concurrent clients, batches of 100.
  std::atomic<std::size_t> next{0};
  std::atomic<int> accepted{0};
  std::atomic<int> duplicates{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  clients.reserve(8);
  const std::uint16_t port = ingest_->port();
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&] {
      HttpClient client(port);
      for (std::size_t start; (start = next.fetch_add(100)) < events.size();) {
        json batch = json::array();
        for (std::size_t i = start; i < std::min(events.size(), start + 100); ++i) {
          batch.push_back(events[i]);
        }
        const HttpResponse response = client.post("/publish", batch.dump());
        if (response.status != 200) {
          ++failures;
          continue;
        }
        const json body = json::parse(response.body);
        accepted += body["accepted"].get<int>();
        duplicates += body["duplicates"].get<int>();
      }
    });
  }
  for (auto& t : clients) t.join();
  ASSERT_EQ(failures, 0);
  EXPECT_EQ(accepted, kUnique);
  EXPECT_EQ(duplicates, kDuplicates);

  const json s = wait_for_idle(kUnique, std::chrono::seconds(120));
  EXPECT_EQ(s["received"], kUnique + kDuplicates);
  EXPECT_EQ(s["unique_processed"], kUnique);
  EXPECT_EQ(s["duplicate_dropped"], kDuplicates);
  EXPECT_EQ(count_rows(), kUnique);
}

TEST_F(Pipeline, TwoProcessorsShareTheConsumerWithoutDoubleStoring) {
  // A second processor on the same durable consumer, with its own workers.
  processor::Processor second(processor_config());
  second.start();
  json batch = json::array();
  for (int i = 0; i < 3000; ++i) batch.push_back(event("shared", std::to_string(i)));
  for (std::size_t i = 0; i < batch.size(); i += 500) {
    json part(batch.begin() + static_cast<std::ptrdiff_t>(i),
              batch.begin() + static_cast<std::ptrdiff_t>(i + 500));
    ASSERT_EQ(publish(part).status, 200);
  }
  const json s = wait_for_idle(3000);
  EXPECT_EQ(s["duplicate_dropped"], 0);
  EXPECT_EQ(count_rows(), 3000);
  EXPECT_GT(second.totals().stored.load(), 0u) << "the second processor did no work";
  EXPECT_GT(processor_->totals().stored.load(), 0u) << "the first processor did no work";
  second.stop();
}

TEST_F(Pipeline, InvalidEventsAreReportedAndValidNeighboursKept) {
  json bad = event("ok", "x");
  bad["timestamp"] = "yesterday";
  const HttpResponse response = publish(json{{"events", json::array({event("ok", "1"), bad})}});
  ASSERT_EQ(response.status, 200) << response.body;
  const json body = json::parse(response.body);
  EXPECT_EQ(body["accepted"], 1);
  EXPECT_EQ(body["rejected"], 1);
  EXPECT_EQ(body["results"][1]["status"], "rejected");
  EXPECT_NE(body["results"][1]["error"].get<std::string>().find("timestamp"), std::string::npos);
  wait_for_idle(1);

  const HttpResponse all_bad = publish(bad);
  EXPECT_EQ(all_bad.status, 400);
  const HttpResponse malformed = http().post("/publish", "{oops");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_TRUE(json::parse(malformed.body).contains("error"));
}

TEST_F(Pipeline, LimitsAndContentTypeAnswerWithJsonErrors) {
  const HttpResponse xml =
      http().request("POST", "/publish", event("t", "1").dump(), "application/xml");
  EXPECT_EQ(xml.status, 415);
  EXPECT_TRUE(json::parse(xml.body).contains("error"));
  EXPECT_EQ(http().request("POST", "/publish", event("t", "1").dump(), "text/plain").status, 415);
  // curl -d sends this content type; the body is still read as JSON.
  const HttpResponse form = http().request("POST", "/publish", event("t", "1").dump(),
                                           "application/x-www-form-urlencoded");
  EXPECT_EQ(form.status, 200) << form.body;

  json many = json::array();
  for (int i = 0; i < 1001; ++i) many.push_back(event("t", std::to_string(i)));
  const HttpResponse too_many = publish(many);
  EXPECT_EQ(too_many.status, 413);
  EXPECT_NE(json::parse(too_many.body)["error"].get<std::string>().find("max_events_per_request"),
            std::string::npos);

  const HttpResponse too_big = publish(event("t", "big", {{"blob", std::string(1100000, 'x')}}));
  EXPECT_EQ(too_big.status, 413);
  EXPECT_NE(json::parse(too_big.body)["error"].get<std::string>().find("INGEST_MAX_BODY_BYTES"),
            std::string::npos);
  wait_for_idle(1);
}

TEST_F(Pipeline, BrokerRemembersIdsAcrossANatsRestart) {
  ASSERT_EQ(publish(event("n", "1")).status, 200);
  wait_for_idle(1);
  nats_->kill9();
  nats_->start();
  // The publisher's connection reconnects by itself; poll until it does.
  HttpResponse again;
  ASSERT_TRUE(wait_until(
      [&] {
        again = publish(event("n", "1"));
        return again.status == 200;
      },
      std::chrono::seconds(30)))
      << again.body;
  EXPECT_EQ(json::parse(again.body)["results"][0]["status"], "duplicate");
  // The broker may lose the consumer's last ack with the kill and redeliver
  // after CONSUMER_ACK_WAIT: that redelivery must not count as a duplicate.
  const json s = wait_for_idle(1);
  EXPECT_EQ(s["duplicate_dropped"], 1);
  EXPECT_EQ(count_rows(), 1);
}

TEST_F(Pipeline, UnknownRouteAnswersJson404) {
  const HttpResponse response = http().get("/nope");
  EXPECT_EQ(response.status, 404);
  EXPECT_TRUE(json::parse(response.body).contains("error"));
}

TEST_F(Pipeline, EventsLimitIsChecked) {
  EXPECT_EQ(http().get("/events?limit=0").status, 400);
  EXPECT_EQ(http().get("/events?limit=1001").status, 400);
  EXPECT_EQ(http().get("/events?limit=ten").status, 400);
  EXPECT_EQ(http().get("/events?limit=1000").status, 200);

  json batch = json::array();
  for (int i = 0; i < 101; ++i) batch.push_back(event("lim", std::to_string(i)));
  ASSERT_EQ(publish(batch).status, 200);
  wait_for_idle(101);
  const json page = json::parse(http().get("/events").body);
  EXPECT_EQ(page["count"], 100) << "the default limit";
  EXPECT_FALSE(page["next_cursor"].is_null());
}

TEST_F(Pipeline, StatsTellUptimeAndStartTime) {
  const json first = stats();
  const auto started = pipeline::parse_rfc3339(first["started_at"].get<std::string>());
  ASSERT_TRUE(started);
  EXPECT_LE(started->micros_since_epoch, pipeline::now_utc().micros_since_epoch);
  EXPECT_GE(first["uptime_seconds"].get<std::int64_t>(), 0);
  json later;
  EXPECT_TRUE(wait_until(
      [&] {
        later = stats();
        return later["uptime_seconds"] > first["uptime_seconds"];
      },
      std::chrono::seconds(5)))
      << later.dump();
  EXPECT_EQ(later["started_at"], first["started_at"]);
}

// Two processes starting at once must not both apply a migration.
TEST(Migrations, ConcurrentStartsApplyEachMigrationOnce) {
  const std::string db = shared_postgres().create_database();
  std::atomic<int> applied{0};
  std::vector<std::thread> starters;
  starters.reserve(4);
  for (int i = 0; i < 4; ++i) {
    starters.emplace_back([&] {
      auto conn = pipeline::db::connect(shared_postgres().url(db), std::chrono::seconds(10));
      applied += pipeline::db::apply_migrations(*conn);
    });
  }
  for (auto& t : starters) t.join();
  pqxx::connection conn(shared_postgres().url(db));
  pqxx::read_transaction tx(conn);
  const auto versions = tx.exec("SELECT count(*) FROM schema_migrations")[0][0].as<int>();
  EXPECT_EQ(applied.load(), versions);
  EXPECT_GT(versions, 0);
}

}  // namespace
}  // namespace testsupport
