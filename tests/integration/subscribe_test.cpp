// GET /subscribe against real servers: exactly once with duplicates in the
// input, topic patterns, resume with Last-Event-ID across commits out of
// sequence order, since, a slow subscriber, the client limit, tokens, and
// shutdown.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pqxx/pqxx>
#include <set>

#include "pipeline/timestamp.hpp"
#include "pipeline_fixture.hpp"
#include "sse_client.hpp"

namespace testsupport {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class Subscribe : public PipelineTest {
 protected:
  std::unique_ptr<SseClient> subscribe(const std::string& query = "",
                                       const std::map<std::string, std::string>& headers = {}) {
    auto client = std::make_unique<SseClient>(ingest_->port(), "/subscribe" + query, headers);
    EXPECT_TRUE(wait_until([&] { return client->status() != 0; }, 10s));
    // The hub has it once its first bytes (the retry field) arrived.
    EXPECT_TRUE(wait_until([&] { return !client->raw().empty(); }, 10s));
    return client;
  }
  // Publishes `count` events of `topic` in requests of ten, each event sent
  // twice (in the same request, and again in the next): 2 x count sends.
  void publish_with_repeats(const std::string& topic, int count, const std::string& prefix) {
    json previous = json::array();
    for (int i = 0; i < count; i += 10) {
      json batch = previous;
      json fresh = json::array();
      for (int j = i; j < std::min(count, i + 10); ++j) {
        json e = event(topic, prefix + std::to_string(j), {{"n", j}});
        fresh.push_back(e);
        batch.push_back(e);
      }
      for (const auto& e : fresh) batch.push_back(e);
      ASSERT_EQ(publish(batch).status, 200);
      previous = fresh;
    }
  }
  static std::vector<std::string> ids(const SseClient& client) {
    std::vector<std::string> out;
    for (const auto& e : client.events()) out.push_back(json::parse(e.data)["event_id"]);
    return out;
  }
  // Cursor order: the ids ("<created>-<seq>") strictly increase.
  static void expect_cursor_order(const std::vector<SseEvent>& events) {
    for (std::size_t i = 1; i < events.size(); ++i) {
      const auto a = events[i - 1].id;
      const auto b = events[i].id;
      const auto split = [](const std::string& id) {
        return std::make_pair(std::stoll(id.substr(0, id.find('-'))),
                              std::stoull(id.substr(id.find('-') + 1)));
      };
      EXPECT_LT(split(a), split(b)) << "event " << i;
    }
  }
};

TEST_F(Subscribe, EachStoredEventOnceInCursorOrderWhateverTheRepeats) {
  start_all();
  auto client = subscribe();
  publish_with_repeats("sub.once", 300, "e");
  ASSERT_TRUE(client->wait_for(300, 30s)) << client->events().size();
  wait_for_idle(300);
  // Nothing more comes: a repeat is never delivered.
  const auto events = client->events();
  EXPECT_FALSE(client->wait_for(301, 500ms));
  EXPECT_EQ(events.size(), 300U);
  const auto received = ids(*client);
  EXPECT_EQ(std::set<std::string>(received.begin(), received.end()).size(), 300U);
  expect_cursor_order(events);
  for (const auto& e : events) {
    const json data = json::parse(e.data);
    EXPECT_EQ(e.type, "event");
    EXPECT_EQ(data["topic"], "sub.once");
    EXPECT_TRUE(data.contains("stored_at"));
  }
  EXPECT_NE(client->raw().rfind("retry: 2000\n\n", 0), std::string::npos) << "opens with retry:";
}

TEST_F(Subscribe, TopicPatternsInNatsSyntax) {
  start_all();
  auto one = subscribe("?topic=orders.*");
  auto more = subscribe("?topic=orders.%3E");  // orders.>
  auto created = subscribe("?topic=*.created");
  auto exact = subscribe("?topic=orders.created");
  json batch = json::array();
  for (const char* topic : {"orders.created", "orders.paid", "orders.eu.created", "users.created",
                            "orders", "ordersx.created"}) {
    batch.push_back(event(topic, "1"));
  }
  ASSERT_EQ(publish(batch).status, 200);
  wait_for_idle(6);
  const auto topics = [](const SseClient& client, std::size_t expected) {
    client.events();
    std::set<std::string> out;
    const_cast<SseClient&>(client).wait_for(expected, 10s);
    for (const auto& e : client.events()) out.insert(json::parse(e.data)["topic"]);
    return out;
  };
  EXPECT_EQ(topics(*one, 2), (std::set<std::string>{"orders.created", "orders.paid"}));
  EXPECT_EQ(topics(*more, 3),
            (std::set<std::string>{"orders.created", "orders.paid", "orders.eu.created"}));
  EXPECT_EQ(topics(*created, 3),
            (std::set<std::string>{"orders.created", "users.created", "ordersx.created"}));
  EXPECT_EQ(topics(*exact, 1), (std::set<std::string>{"orders.created"}));
  EXPECT_EQ(one->events().size(), 2U);

  const HttpResponse bad = http().get("/subscribe?topic=orders.%3E.x");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(json::parse(bad.body)["error"].get<std::string>().find("topic"), std::string::npos);
  EXPECT_EQ(http().get("/subscribe?after=12").status, 400);
  EXPECT_EQ(http().get("/subscribe?since=yesterday").status, 400);
}

// Two processors with two workers each and small batches commit out of
// sequence order; a subscriber that went away and resumes with
// Last-Event-ID gets every event it missed, once, and nothing it had.
TEST_F(Subscribe, ResumeWithLastEventIdAfterOutOfOrderCommits) {
  start_processor();
  auto second = std::make_unique<processor::Processor>([&] {
    auto config = processor_config();
    config.batch_size = 5;
    return config;
  }());
  second->start();
  start_ingest();
  auto first = subscribe();
  publish_with_repeats("sub.resume", 100, "a");
  ASSERT_TRUE(first->wait_for(100, 30s));
  const std::string last = first->last_id();
  const std::size_t seen = first->events().size();
  first->stop();
  // While it is away, many small batches from four workers.
  std::vector<std::thread> publishers;
  publishers.reserve(4);
  for (int t = 0; t < 4; ++t) {
    publishers.emplace_back([&, t] {
      HttpClient client(ingest_->port());
      for (int i = 0; i < 50; ++i) {
        client.post("/publish",
                    json::array({event("sub.resume", "b" + std::to_string(t * 50 + i))}).dump());
      }
    });
  }
  for (auto& p : publishers) p.join();
  wait_for_idle(300);
  {
    // The fault this case is about: rows committed out of stream order.
    pqxx::connection conn(shared_postgres().url(database_));
    pqxx::read_transaction tx(conn);
    const auto inversions = tx.exec(
                                  "SELECT count(*) FROM events a JOIN events b ON a.id < b.id AND "
                                  "a.stream_seq > b.stream_seq")[0][0]
                                .as<long>();
    ASSERT_GT(inversions, 0) << "no commit out of sequence order happened; the case proves nothing";
  }
  auto resumed = subscribe("", {{"Last-Event-ID", last}});
  ASSERT_TRUE(resumed->wait_for(300 - seen, 30s)) << resumed->events().size();
  EXPECT_FALSE(resumed->wait_for(300 - seen + 1, 500ms)) << "nothing twice";
  std::vector<std::string> all = ids(*first);
  for (const auto& id : ids(*resumed)) all.push_back(id);
  EXPECT_EQ(all.size(), 300U);
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), 300U);
  expect_cursor_order(resumed->events());
  second.reset();
}

// Issue 18, item 3: `since` started at the first row committed since then,
// and missed a row of a lower position whose batch committed later. Here a
// row lock holds the batch of event A (its topic's counters are locked)
// while the later event B commits; the subscription starts in between.
TEST_F(Subscribe, SinceMissesNothingWhenAnEarlierBatchCommitsLate) {
  start_all();
  pqxx::connection locker(shared_postgres().url(database_));
  {
    pqxx::work tx(locker);
    tx.exec(
        "INSERT INTO topic_counters (topic, shard, value) SELECT 'sub.late.a', s, 0 "
        "FROM generate_series(0, 63) AS s ON CONFLICT DO NOTHING");
    tx.commit();
  }
  pqxx::work lock(locker);
  lock.exec("SELECT 1 FROM topic_counters WHERE topic = 'sub.late.a' FOR UPDATE");
  std::this_thread::sleep_for(20ms);  // a storage time strictly after anything before
  const std::string since = pipeline::format_rfc3339(pipeline::now_utc());
  ASSERT_EQ(publish(json::array({event("sub.late.a", "a")})).status, 200);
  std::this_thread::sleep_for(300ms);  // the point: A's batch is taken, and waits on the lock
  ASSERT_EQ(publish(json::array({event("sub.late.b", "b")})).status, 200);
  ASSERT_TRUE(wait_until(
      [&] {
        return http().get("/events?topic=sub.late.b").body.find("\"b\"") != std::string::npos;
      },
      20s))
      << "B was not stored while A waited";
  ASSERT_EQ(http().get("/events?topic=sub.late.a").body.find("\"a\""), std::string::npos)
      << "A was not held back: the case proves nothing";
  auto client = subscribe("?since=" + since + "&topic=sub.late.*");
  lock.abort();  // A commits now, after B
  ASSERT_TRUE(client->wait_for(2, 20s))
      << "got " << client->events().size() << ": " << client->raw();
  EXPECT_EQ(ids(*client), (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(client->wait_for(3, 500ms)) << "nothing twice";
}

TEST_F(Subscribe, SinceReplaysFromATimeOfStorageThenGoesLive) {
  start_all();
  publish_with_repeats("sub.since", 20, "old");
  wait_for_idle(20);
  std::this_thread::sleep_for(20ms);  // a storage time strictly after the old ones
  const std::string since = pipeline::format_rfc3339(pipeline::now_utc());
  publish_with_repeats("sub.since", 20, "new");
  wait_for_idle(40);
  auto client = subscribe("?since=" + since);
  ASSERT_TRUE(client->wait_for(20, 20s));
  ASSERT_EQ(publish(json::array({event("sub.since", "live")})).status, 200);
  ASSERT_TRUE(client->wait_for(21, 20s));
  const auto got = ids(*client);
  EXPECT_EQ(got.front(), "new0");
  EXPECT_EQ(got.back(), "live");
  for (const auto& id : got) EXPECT_EQ(id.rfind("old", 0), std::string::npos) << id;
}

// A client that never reads: cut once SUBSCRIBE_BUFFER_EVENTS are unread;
// the others get everything; /health stays quick; it resumes without a gap.
TEST_F(Subscribe, ASlowSubscriberIsCutAndResumesWithoutAGap) {
  configure_ingest_ = [](ingest::IngestConfig& c) {
    c.subscribe_buffer_events = 50;
    c.subscribe_slow_timeout = std::chrono::seconds(1);
  };
  start_all();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(ingest_->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string request = "GET /subscribe HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  auto reader = subscribe();
  // More than the kernel's socket buffers hold (loopback's autotuning can
  // give a sender megabytes).
  const std::string big(16000, 'x');
  for (int i = 0; i < 400; i += 20) {
    json batch = json::array();
    for (int j = i; j < i + 20; ++j)
      batch.push_back(event("sub.slow", std::to_string(j), {{"x", big}}));
    ASSERT_EQ(publish(batch).status, 200);
  }
  ASSERT_TRUE(reader->wait_for(400, 60s)) << reader->events().size();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(HttpClient(ingest_->port()).get("/health").status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 200ms);
  ASSERT_TRUE(wait_until(
      [&] {
        return http()
                   .get("/metrics")
                   .body.find("pipeline_subscribe_streams_ended_total{reason=\"slow\"} 1") !=
               std::string::npos;
      },
      10s))
      << "the slow stream was not cut";
  // What the slow client got before the cut, then a resume from its last id.
  std::string got;
  char buffer[65536];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) got.append(buffer, n);
  ::close(fd);
  std::vector<std::string> seen;
  std::string last;
  for (std::size_t at = 0; (at = got.find("\nid: ", at)) != std::string::npos;) {
    const auto end = got.find('\n', at + 1);
    const auto data = got.find("\ndata: ", end);
    const auto data_end = got.find('\n', data + 1);
    if (data == std::string::npos || data_end == std::string::npos) break;  // cut mid-event
    last = got.substr(at + 5, end - at - 5);
    seen.push_back(json::parse(got.substr(data + 7, data_end - data - 7))["event_id"]);
    at = data_end;
  }
  ASSERT_LT(seen.size(), 400U);
  auto resumed = subscribe("", {{"Last-Event-ID", last}});
  ASSERT_TRUE(resumed->wait_for(400 - seen.size(), 30s));
  for (const auto& id : ids(*resumed)) seen.push_back(id);
  EXPECT_EQ(seen.size(), 400U);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 400U);
}

TEST_F(Subscribe, TheClientLimitAnswers503WithRetryAfter) {
  configure_ingest_ = [](ingest::IngestConfig& c) { c.subscribe_max_clients = 2; };
  start_all();
  auto a = subscribe();
  auto b = subscribe();
  const HttpResponse third = http().get("/subscribe");
  EXPECT_EQ(third.status, 503);
  EXPECT_FALSE(third.header("retry-after").empty());
  EXPECT_NE(json::parse(third.body)["error"].get<std::string>().find("SUBSCRIBE_MAX_CLIENTS"),
            std::string::npos);
  a->stop();
  // Its place is free once the hub noticed it left.
  std::unique_ptr<SseClient> c;
  EXPECT_TRUE(wait_until(
      [&] {
        c = std::make_unique<SseClient>(ingest_->port(), "/subscribe");
        wait_until([&] { return c->status() != 0; }, 5s);
        return c->status() == 200;
      },
      10s));
}

TEST_F(Subscribe, TokensGuardTheStreamButNotThePage) {
  api_tokens_ = "sub-token";
  start_all();
  EXPECT_EQ(http().get("/subscribe").status, 401);
  // A browser's Accept (without text/html, GET / is Elasticsearch's answer).
  const HttpResponse page =
      http().request("GET", "/", "", "", {{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"}});
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("/subscribe"), std::string::npos);
  auto client = subscribe("", {{"Authorization", "Bearer sub-token"}});
  EXPECT_EQ(client->status(), 200);
  ASSERT_EQ(http()
                .request("POST", "/publish", json::array({event("sub.auth", "1")}).dump(),
                         "application/json", {{"Authorization", "Bearer sub-token"}})
                .status,
            200);
  EXPECT_TRUE(client->wait_for(1, 20s));
}

TEST_F(Subscribe, ShutdownEndsEveryStreamCleanly) {
  start_all();
  auto a = subscribe();
  auto b = subscribe("?topic=x.*");
  ASSERT_EQ(publish(json::array({event("x.y", "1")})).status, 200);
  ASSERT_TRUE(a->wait_for(1, 20s));
  ingest_->drain(std::chrono::seconds(5));
  EXPECT_TRUE(a->wait_closed(5s));
  EXPECT_TRUE(b->wait_closed(5s));
  EXPECT_TRUE(a->ended_cleanly()) << "the chunked body ended, not a cut connection";
  EXPECT_TRUE(b->ended_cleanly());
}

}  // namespace
}  // namespace testsupport
