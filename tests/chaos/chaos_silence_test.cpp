// Chaos, silence: a dependency that stops answering without closing
// anything (a proxy that stops forwarding, a database stopped with
// SIGSTOP). The kernel keeps the sockets open, so no error ever comes:
// only deadlines help. While it lasts, ingest answers every endpoint in
// time (503 where it must, naming the dependency); when it ends, the
// pipeline recovers within seconds; nothing accepted is lost. Issue 18,
// item 2. See chaos_stack.hpp.
#include "chaos_stack.hpp"
#include "fault_proxy.hpp"

namespace testsupport {
namespace {

struct Timed {
  HttpResponse response;
  double seconds = 0;
};

Timed timed_get(std::uint16_t port, const std::string& path) {
  HttpClient client(port, 15000);  // fresh: no earlier request in its way
  const auto t0 = std::chrono::steady_clock::now();
  Timed timed{client.get(path), 0};
  timed.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return timed;
}

// What ingest answers while `dependency` (the name /ready gives it) is
// silent: checked over `window`, every endpoint within its bound.
void expect_answers_while_silent(std::uint16_t port, const std::string& dependency,
                                 std::chrono::milliseconds window, bool database) {
  const auto end = std::chrono::steady_clock::now() + window;
  bool ready_named_it = false;
  int rounds = 0;
  while (std::chrono::steady_clock::now() < end) {
    ++rounds;
    // A few rounds a second: each publishes one probe event.
    const auto round_end = std::chrono::steady_clock::now() + 500ms;
    const Timed ready = timed_get(port, "/ready");
    EXPECT_LT(ready.seconds, 2.0) << "/ready took " << ready.seconds << " s";
    if (ready.response.status == 503 && ready.response.body.find(dependency) != std::string::npos) {
      ready_named_it = true;
    }
    const Timed health = timed_get(port, "/health");
    EXPECT_EQ(health.response.status, 200);
    EXPECT_LT(health.seconds, 0.5);
    const Timed metrics = timed_get(port, "/metrics");
    EXPECT_EQ(metrics.response.status, 200);
    EXPECT_LT(metrics.seconds, 2.0) << "/metrics took " << metrics.seconds << " s";
    if (database) {
      // INGEST_QUERY_TIMEOUT=2s, and a second more at most.
      for (const char* path : {"/events?limit=5", "/stats"}) {
        const Timed query = timed_get(port, path);
        EXPECT_LT(query.seconds, 3.5) << path << " took " << query.seconds << " s";
        if (query.response.status != 200) {
          EXPECT_EQ(query.response.status, 503) << path << ": " << query.response.body;
          EXPECT_FALSE(query.response.header("retry-after").empty()) << path;
        }
      }
      // Publishing does not need the database.
      HttpClient client(port, 15000);
      const json event = {{"topic", "probe.db"},
                          {"event_id", "during-" + std::to_string(rounds)},
                          {"timestamp", "2026-11-24T10:00:00Z"},
                          {"source", "chaos"},
                          {"payload", json::object()}};
      EXPECT_EQ(client.post("/publish", event.dump()).status, 200);
    } else {
      // Without a broker: 503 within INGEST_PUBLISH_TIMEOUT (2 s) and a margin.
      HttpClient client(port, 15000);
      const auto t0 = std::chrono::steady_clock::now();
      const json event = {{"topic", "probe.nats"},
                          {"event_id", "during-" + std::to_string(rounds)},
                          {"timestamp", "2026-11-24T10:00:00Z"},
                          {"source", "chaos"},
                          {"payload", json::object()}};
      const HttpResponse published = client.post("/publish", event.dump());
      const double took =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      EXPECT_LT(took, 4.5) << "publishing took " << took << " s";
      EXPECT_TRUE(published.status == 503 || published.status == 200) << published.status;
      if (published.status == 503) {
        EXPECT_FALSE(published.header("retry-after").empty());
      }
    }
    std::this_thread::sleep_until(round_end);
  }
  EXPECT_TRUE(ready_named_it) << "/ready never said 503 naming " << dependency;
}

// /ready is 200 again within `limit` of the dependency's return.
void expect_recovery(std::uint16_t port, std::chrono::seconds limit) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool ready =
      wait_until([&] { return timed_get(port, "/ready").response.status == 200; }, limit);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[chaos] ready again %.1f s after the dependency returned\n", took);
  EXPECT_TRUE(ready) << "not ready " << limit.count() << " s after the dependency returned";
}

class Silence : public Chaos {
 protected:
  // The services reach `what` through a proxy (or straight), with short
  // deadlines so that the case is quick.
  void start(const std::vector<std::string>& via) {
    nats_ = std::make_unique<NatsServer>();
    stack_ = std::make_unique<ChaosStack>(std::vector<std::string>{nats_->url()});
    std::vector<std::string> common = {"INGEST_QUERY_TIMEOUT=2s", "DATABASE_STATEMENT_TIMEOUT=2s",
                                       "NATS_PING_INTERVAL=1s"};
    common.insert(common.end(), via.begin(), via.end());
    stack_->set_common(common);
    stack_->start_processor(0);
    stack_->start_processor(1);
    stack_->start_ingest();
  }
};

TEST_F(Silence, PostgresBehindAProxyThatStopsForwarding) {
  nats_ = std::make_unique<NatsServer>();
  stack_ = std::make_unique<ChaosStack>(std::vector<std::string>{nats_->url()});
  FaultProxy proxy(stack_->postgres().port());
  stack_->set_common({"INGEST_QUERY_TIMEOUT=2s", "DATABASE_STATEMENT_TIMEOUT=2s",
                      "DATABASE_URL=host=127.0.0.1 port=" + std::to_string(proxy.port()) +
                          " user=postgres dbname=chaos connect_timeout=5"});
  stack_->start_processor(0);
  stack_->start_processor(1);
  stack_->start_ingest();
  LoadDriver driver(stack_->ingest_port(), kSends, 21);
  under_load(driver, [&](const std::atomic<bool>& done) {
    pause(done, 1000ms);
    proxy.blackhole(true);
    expect_answers_while_silent(stack_->ingest_port(), "postgres", 8s, /*database=*/true);
    proxy.blackhole(false);
    expect_recovery(stack_->ingest_port(), 10s);
  });
  EXPECT_TRUE(stack_->logged("processor.log", "batch_failed") ||
              stack_->logged("processor.log", "postgres_unavailable"))
      << "the processors never noticed the silence";
  stack_->verify("postgres silent behind a proxy 8s", {&driver});
  // The database's silence costs no client a 2xx.
  EXPECT_EQ(driver.sends_acked(), driver.sends_made());
}

TEST_F(Silence, PostgresStoppedWithSigstop) {
  start({});
  LoadDriver driver(stack_->ingest_port(), kSends, 22);
  int frozen = 0;
  under_load(driver, [&](const std::atomic<bool>& done) {
    pause(done, 1000ms);
    frozen = stack_->postgres().freeze(true);
    expect_answers_while_silent(stack_->ingest_port(), "postgres", 8s, /*database=*/true);
    stack_->postgres().freeze(false);
    expect_recovery(stack_->ingest_port(), 10s);
  });
  EXPECT_GT(frozen, 1) << "the cluster was not stopped";
  stack_->verify("postgres SIGSTOPped 8s", {&driver},
                 " | processes stopped " + std::to_string(frozen));
  EXPECT_EQ(driver.sends_acked(), driver.sends_made());
}

TEST_F(Silence, NatsServerBehindAProxyThatStopsForwarding) {
  nats_ = std::make_unique<NatsServer>();
  FaultProxy proxy(nats_->port());
  stack_ = std::make_unique<ChaosStack>(
      std::vector<std::string>{"nats://127.0.0.1:" + std::to_string(proxy.port())});
  stack_->set_common({"NATS_PING_INTERVAL=1s", "INGEST_QUERY_TIMEOUT=2s"});
  stack_->start_processor(0);
  stack_->start_processor(1);
  stack_->start_ingest();
  LoadDriver driver(stack_->ingest_port(), kSends, 23);
  std::atomic<std::size_t> flooded{0};
  under_load(driver, [&](const std::atomic<bool>& done) {
    pause(done, 1000ms);
    proxy.blackhole(true);
    // Big publishes meanwhile, so that the sockets between ingest and the
    // broker fill up and a write to the broker would block: no thread that
    // serves HTTP may be the one that waits.
    std::atomic<bool> flooding{true};
    std::vector<std::thread> flood;
    flood.reserve(8);
    for (int t = 0; t < 8; ++t) {
      flood.emplace_back([&, t] {
        HttpClient client(stack_->ingest_port(), 15000);
        const std::string pad(60000, 'f');
        for (int i = 0; flooding; ++i) {
          json batch = json::array();
          for (int k = 0; k < 15; ++k) {
            batch.push_back({{"topic", "probe.flood"},
                             {"event_id", std::to_string(t) + "-" + std::to_string(i) + "-" +
                                              std::to_string(k)},
                             {"timestamp", "2026-11-24T10:00:00Z"},
                             {"source", "chaos"},
                             {"payload", {{"pad", pad}}}});
          }
          const std::string body = batch.dump();
          if (client.post("/publish", body).status != 0) flooded += body.size();
        }
      });
    }
    expect_answers_while_silent(stack_->ingest_port(), "nats", 8s, /*database=*/false);
    flooding = false;
    for (auto& thread : flood) thread.join();
    proxy.blackhole(false);
    expect_recovery(stack_->ingest_port(), 15s);
  });
  std::printf("[chaos] %zu MiB offered to the silent broker\n", flooded.load() >> 20);
  stack_->verify("nats-server silent behind a proxy 8s", {&driver});
}

}  // namespace
}  // namespace testsupport
