// The HTTP API contract: auth, rate limits, readiness, backpressure, queries,
// pagination, method and timeout handling, the OpenAPI document.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <thread>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "ingest/event_store.hpp"
#include "pipeline/timestamp.hpp"
#include "pipeline_fixture.hpp"

namespace testsupport {
namespace {

using nlohmann::json;

class Api : public PipelineTest {
 protected:
  void start_all() {
    start_processor();
    start_ingest();
  }
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

// Everything the services log while it lives, at every level.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>(
        "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(text_));
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::string text() const { return text_.str(); }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST_F(Api, BearerTokensGuardEverythingButHealthReadyAndMetrics) {
  api_tokens_ = "first-token, second-token";
  LogCapture logs;
  start_all();
  const HttpResponse missing = publish(event("a", "1"));
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.header("www-authenticate").rfind("Bearer", 0), 0u);
  EXPECT_TRUE(json::parse(missing.body).contains("error"));
  const HttpResponse wrong =
      http().request("POST", "/publish", event("a", "1").dump(), "application/json",
                     {{"Authorization", "Bearer first-tokeN"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(http().get("/stats").status, 401);
  EXPECT_EQ(http().get("/events").status, 401);

  const HttpResponse good =
      http().request("POST", "/publish", event("a", "1").dump(), "application/json",
                     {{"Authorization", "Bearer second-token"}});
  EXPECT_EQ(good.status, 200) << good.body;
  EXPECT_EQ(
      http().request("GET", "/stats", "", "", {{"Authorization", "Bearer first-token"}}).status,
      200);
  EXPECT_EQ(http().get("/health").status, 200);
  EXPECT_EQ(http().get("/ready").status, 200);
  EXPECT_EQ(http().get("/metrics").status, 200);
  EXPECT_EQ(http().get("/openapi.json").status, 401);
  EXPECT_EQ(http()
                .request("GET", "/openapi.json", "", "", {{"Authorization", "Bearer first-token"}})
                .status,
            200);
  stop_ingest();
  const std::string logged = logs.text();
  EXPECT_NE(logged.find("ingest_listening"), std::string::npos) << "the capture works";
  for (const char* secret : {"first-token", "second-token", "first-tokeN"}) {
    EXPECT_EQ(logged.find(secret), std::string::npos) << secret << " was logged:\n" << logged;
  }
}

TEST_F(Api, RateLimitAnswers429WithRetryAfter) {
  rate_limit_ = 0.5;  // one request every two seconds after a burst of three
  rate_burst_ = 3;
  start_all();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(http().get("/events").status, 200);
  const HttpResponse limited = http().get("/events");
  EXPECT_EQ(limited.status, 429);
  EXPECT_GE(std::stoi(limited.header("retry-after")), 1);
  EXPECT_TRUE(json::parse(limited.body).contains("error"));
  EXPECT_EQ(http().get("/health").status, 200) << "health is never rate limited";
}

TEST_F(Api, ReadyReportsWhichDependencyIsDown) {
  start_all();
  const HttpResponse up = http().get("/ready");
  ASSERT_EQ(up.status, 200) << up.body;
  EXPECT_EQ(json::parse(up.body)["checks"]["postgres"], "ok");
  nats_->kill9();
  HttpResponse down;
  ASSERT_TRUE(wait_until(
      [&] {
        down = http().get("/ready");
        return down.status == 503;
      },
      std::chrono::seconds(10)));
  EXPECT_NE(json::parse(down.body)["checks"]["nats"], "ok");
  EXPECT_EQ(http().get("/health").status, 200) << "alive even when not ready";
}

TEST_F(Api, BrokerDownMeans503WithRetryAfterAndARetryIsSafe) {
  publish_timeout_ = std::chrono::milliseconds(500);
  start_all();
  ASSERT_EQ(publish(event("bp", "before")).status, 200);
  nats_->kill9();
  const json batch = json::array({event("bp", "x1"), event("bp", "x2")});
  const HttpResponse refused = publish(batch);
  ASSERT_EQ(refused.status, 503) << refused.body;
  EXPECT_FALSE(refused.header("retry-after").empty());
  const json body = json::parse(refused.body);
  EXPECT_EQ(body["failed"], 2);
  EXPECT_EQ(body["results"][0]["status"], "failed");

  nats_->start();
  HttpResponse retried;
  ASSERT_TRUE(wait_until(
      [&] {
        retried = publish(batch);
        return retried.status == 200;
      },
      std::chrono::seconds(30)))
      << retried.body;
  // The events may have reached the stream after all while the first answer
  // was a 503; either way each is stored once.
  wait_for_idle(3);
  EXPECT_EQ(count_rows(), 3);
}

TEST_F(Api, FullStreamMeans503NotSilentLoss) {
  stream_.max_bytes = 4096;
  start_all();
  int accepted = 0;
  HttpResponse last;
  for (int i = 0; i < 100 && last.status != 503; ++i) {
    last = publish(event("full", std::to_string(i), {{"pad", std::string(200, 'x')}}));
    if (last.status == 200) ++accepted;
  }
  ASSERT_EQ(last.status, 503) << last.body;
  EXPECT_FALSE(last.header("retry-after").empty());
  EXPECT_NE(json::parse(last.body)["results"][0]["error"].get<std::string>().find("JetStream"),
            std::string::npos);
  EXPECT_GT(accepted, 0);
  wait_for_idle(accepted);
  EXPECT_EQ(count_rows(), accepted);
}

TEST_F(Api, EventsFilterByTopicSourceAndTimeRangeInEitherOrder) {
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

TEST_F(Api, CursorPagesHaveNoGapsOrRepeatsWhileEventsArrive) {
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

TEST_F(Api, EventQueriesUseTheirIndexes) {
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
  const auto plan = [&](const ingest::EventQuery& query) {
    pqxx::read_transaction tx(conn);
    const std::string sql = ingest::events_page_sql(
        query, 200000, [&](const std::string& text) { return tx.quote(text); });
    std::string text;
    for (const auto& row : tx.exec("EXPLAIN " + sql)) text += row[0].as<std::string>() + "\n";
    return text;
  };
  const auto now = pipeline::now_utc().micros_since_epoch;
  ingest::EventQuery query;
  query.topic = "topic7";
  const std::string by_topic = plan(query);
  EXPECT_NE(by_topic.find("events_topic_ts_idx"), std::string::npos) << by_topic;
  query = {};
  query.source = "source3";
  query.descending = true;
  const std::string by_source = plan(query);
  EXPECT_NE(by_source.find("events_source_ts_idx"), std::string::npos) << by_source;
  query = {};
  query.since_micros = now - 3600'000'000LL;
  query.cursor = ingest::EventCursor{now - 7200'000'000LL, 5, 5, 200000};
  const std::string by_time = plan(query);
  EXPECT_NE(by_time.find("events_ts_idx"), std::string::npos) << by_time;
  std::cout << "EXPLAIN GET /events?topic=...:\n" << by_topic;
}

// The processor owns the schema: ingest on a bare database takes events but
// answers /events and /stats with 503 until a processor has created it.
TEST_F(Api, IngestNeverWritesTheSchemaAndReadsWaitForIt) {
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
  EXPECT_EQ(json::parse(http().get("/ready").body)["checks"]["schema"], "ok");
}

TEST_F(Api, WrongMethodIs405WithAllow) {
  start_all();
  const HttpResponse response = http().get("/publish");
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(response.header("allow"), "POST");
  EXPECT_TRUE(json::parse(response.body).contains("error"));
  EXPECT_EQ(http().get("/nowhere").status, 404);

  // Both answers are counted like any other.
  const std::string metrics = http().get("/metrics").body;
  const auto counted = [&](const std::string& code, const std::string& route) {
    std::istringstream lines(metrics);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("pipeline_http_requests_total{", 0) == 0 &&
          line.find("code=\"" + code + "\"") != std::string::npos &&
          line.find("route=\"" + route + "\"") != std::string::npos) {
        return std::stod(line.substr(line.rfind(' ') + 1));
      }
    }
    return 0.0;
  };
  EXPECT_EQ(counted("405", "/publish"), 1.0) << metrics;
  EXPECT_EQ(counted("404", "other"), 1.0) << metrics;
}

TEST_F(Api, SlowClientIsCutOffAfterTheHeaderTimeout) {
  header_timeout_ = std::chrono::milliseconds(300);
  start_all();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(ingest_->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string partial = "POST /publish HTTP/1.1\r\nHost: x\r\n";
  ASSERT_EQ(::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(partial.size()));
  // The server must answer (408) or close; it must not wait for us forever.
  pollfd pfd{fd, POLLIN, 0};
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1) << "connection still held open after 5 s";
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
  char buffer[4096];
  const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
  if (n > 0) {  // an answer rather than a bare close: a 408 (from Pistache's parser, no body)
    const std::string answer(buffer, static_cast<std::size_t>(n));
    EXPECT_EQ(answer.rfind("HTTP/1.1 408", 0), 0u) << answer;
  }
  ::close(fd);
}

TEST_F(Api, ServesTheOpenApiDocumentFromTheRepository) {
  start_all();
  const HttpResponse response = http().get("/openapi.json");
  ASSERT_EQ(response.status, 200);
  std::ifstream file(std::string(PIPELINE_SOURCE_DIR) + "/ingest/openapi.json");
  std::stringstream text;
  text << file.rdbuf();
  EXPECT_EQ(json::parse(response.body), json::parse(text.str()));
}

TEST_F(Api, CountersAreExactWithTwoIngestsAndTwoProcessors) {
  start_all();
  processor::Processor second_processor(processor_config());
  second_processor.start();
  ingest::IngestServer second_ingest(ingest_config());
  second_ingest.start();

  constexpr int kUnique = 2000;
  std::vector<std::thread> clients;
  clients.reserve(4);
  const std::uint16_t ports[] = {ingest_->port(), second_ingest.port()};
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      HttpClient client(ports[c % 2]);
      // Every client sends every event: 4x the events, 3/4 of them duplicates.
      for (int start = 0; start < kUnique; start += 100) {
        json batch = json::array();
        for (int i = start; i < start + 100; ++i) batch.push_back(event("two", std::to_string(i)));
        EXPECT_EQ(client.post("/publish", batch.dump()).status, 200);
      }
    });
  }
  for (auto& t : clients) t.join();
  const json s = wait_for_idle(kUnique);
  EXPECT_EQ(s["received"], 4 * kUnique);
  EXPECT_EQ(s["duplicate_dropped"], 3 * kUnique);
  EXPECT_EQ(count_rows(), kUnique);
  second_ingest.stop();
  second_processor.stop();
}

}  // namespace
}  // namespace testsupport
