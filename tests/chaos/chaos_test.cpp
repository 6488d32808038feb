// Chaos tests: the real ingest and processor executables, a real nats-server
// (or a three-node JetStream cluster) and a real PostgreSQL, with processes
// killed (-9), stopped, and crashed at named points while a driver publishes
// events with 30% duplicates. Then a drain, and a check against PostgreSQL:
// nothing that got a 2xx is lost, nothing is stored twice.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "http_client.hpp"
#include "pipeline/jetstream.hpp"
#include "servers.hpp"

namespace testsupport {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// How one event (one key) fared, over every time it was sent.
enum class Fate { kNotSent, kNoAnswer, kError, kAcked };

// Publishes `sends` events (30% of them repeats of earlier keys, with the
// same payload) from four clients, batches of ten, paced so that the load
// lasts a few seconds, and records each key's best fate. Bounded in count
// and in time.
class LoadDriver {
 public:
  LoadDriver(std::uint16_t port, int sends, std::uint32_t seed) : port_(port) {
    std::mt19937 random(seed);
    std::uniform_real_distribution<double> coin(0, 1);
    for (int i = 0; i < sends; ++i) {
      if (!keys_.empty() && coin(random) < 0.3) {
        sends_.push_back(random() % keys_.size());
      } else {
        const std::size_t k = keys_.size();
        keys_.push_back({{"topic", "chaos." + std::to_string(k % 4)},
                         {"event_id", "ev-" + std::to_string(k)},
                         {"timestamp", "2026-11-24T10:00:00Z"},
                         {"source", "chaos"},
                         {"payload", {{"n", k}, {"text", "payload of " + std::to_string(k)}}}});
        sends_.push_back(k);
      }
    }
    fates_.assign(keys_.size(), Fate::kNotSent);
  }

  void run(std::chrono::milliseconds pace, std::chrono::seconds time_limit) {
    const auto deadline = std::chrono::steady_clock::now() + time_limit;
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> clients;
    clients.reserve(4);
    for (int c = 0; c < 4; ++c) {
      clients.emplace_back([&] {
        HttpClient client(port_, 10000);
        for (std::size_t start; (start = next.fetch_add(10)) < sends_.size();) {
          if (std::chrono::steady_clock::now() > deadline) break;
          const std::size_t end = std::min(sends_.size(), start + 10);
          json batch = json::array();
          for (std::size_t i = start; i < end; ++i) batch.push_back(keys_[sends_[i]]);
          const HttpResponse response = client.post("/publish", batch.dump());
          record(start, end, response);
          // Like a real client, back off while the service is unreachable,
          // so the load outlasts the faults instead of burning its sends.
          std::this_thread::sleep_for(response.status == 0 ? pace * 5 : pace);
        }
      });
    }
    for (auto& t : clients) t.join();
  }

  const std::vector<json>& keys() const { return keys_; }
  Fate fate(std::size_t key) const { return fates_[key]; }
  std::size_t sends() const { return sends_.size(); }
  /// Sends made (answered or not) and sends answered 2xx accepted/duplicate.
  std::size_t sends_made() const { return sends_made_; }
  std::size_t sends_acked() const { return sends_acked_; }

 private:
  void record(std::size_t start, std::size_t end, const HttpResponse& response) {
    std::lock_guard<std::mutex> lock(mutex_);
    json body;
    if (response.status != 0) body = json::parse(response.body, nullptr, false);
    for (std::size_t i = start; i < end; ++i) {
      Fate fate = Fate::kNoAnswer;
      if (response.status != 0) {
        fate = Fate::kError;
        const std::size_t index = i - start;
        if (body.is_object() && body.contains("results") && index < body["results"].size()) {
          const auto& status = body["results"][index]["status"];
          // A result counts only in a 2xx answer: that is the promise.
          if (response.status / 100 == 2 && (status == "accepted" || status == "duplicate")) {
            fate = Fate::kAcked;
          }
        }
      }
      Fate& best = fates_[sends_[i]];
      best = std::max(best, fate);
      ++sends_made_;
      if (fate == Fate::kAcked) ++sends_acked_;
    }
  }

  std::uint16_t port_;
  std::vector<json> keys_;
  std::vector<std::size_t> sends_;  // index into keys_ per send
  std::mutex mutex_;
  std::vector<Fate> fates_;
  std::size_t sends_made_ = 0;
  std::size_t sends_acked_ = 0;
};

// The stack under test, with each service as a real process.
class ChaosStack {
 public:
  explicit ChaosStack(std::vector<std::string> nats_urls, int replicas = 1)
      : nats_urls_(std::move(nats_urls)), replicas_(replicas), ingest_port_(free_port()) {
    pqxx::connection conn(postgres_.url());
    pqxx::nontransaction tx(conn);
    tx.exec("CREATE DATABASE chaos");
  }

  std::vector<std::string> env(const std::vector<std::string>& extra = {}) const {
    std::string urls;
    for (const auto& url : nats_urls_) urls += (urls.empty() ? "" : ",") + url;
    std::vector<std::string> vars = {
        "NATS_URL=" + urls,
        "DATABASE_URL=" + postgres_.url("chaos"),
        "STREAM_REPLICAS=" + std::to_string(replicas_),
        "CONSUMER_ACK_WAIT=2s",
        "CONNECT_TIMEOUT=30s",
        "LOG_LEVEL=warn",
        "INGEST_HTTP_ADDRESS=127.0.0.1",
        "INGEST_HTTP_PORT=" + std::to_string(ingest_port_),
        "INGEST_PUBLISH_TIMEOUT=2s",
        "PROCESSOR_WORKERS=2",
        "PROCESSOR_BATCH_SIZE=100",
        "PROCESSOR_FETCH_WAIT=100ms",
        "PROCESSOR_RETRY_DELAY=200ms",
        "PROCESSOR_METRICS_ADDRESS=127.0.0.1:0",
    };
    vars.insert(vars.end(), extra.begin(), extra.end());
    return vars;
  }

  void start_ingest(const std::vector<std::string>& extra = {}) {
    ingest_ = Process({INGEST_BINARY}, logs_.path() + "/ingest.log", env(extra));
    const bool up = wait_until(
        [&] {
          HttpClient client(ingest_port_, 1000);
          return client.get("/health").status == 200;
        },
        60s);
    if (!up) throw std::runtime_error("ingest did not come up; see " + logs_.path());
  }

  void start_processor(std::size_t i, const std::vector<std::string>& extra = {}) {
    if (processors_.size() <= i) processors_.resize(i + 1);
    processors_[i] = Process({PROCESSOR_BINARY}, logs_.path() + "/processor.log", env(extra));
  }

  Process& ingest() { return ingest_; }
  Process& processor(std::size_t i) { return processors_.at(i); }
  PostgresCluster& postgres() { return postgres_; }
  std::uint16_t ingest_port() const { return ingest_port_; }

  // Waits until the pipeline is idle and its counters agree; returns the
  // drain time in seconds.
  double drain(json* last_stats) {
    const auto started = std::chrono::steady_clock::now();
    HttpClient client(ingest_port_, 5000);
    const bool idle = wait_until(
        [&] {
          const HttpResponse response = client.get("/stats");
          if (response.status != 200) return false;
          *last_stats = json::parse(response.body);
          const json& s = *last_stats;
          return s["pending"] == 0 &&
                 s["received"] == s["unique_processed"].get<std::int64_t>() +
                                      s["duplicate_dropped"].get<std::int64_t>();
        },
        60s);
    if (!idle) {
      // Which part of the backlog is stuck: undelivered, or delivered and unacked?
      std::string urls;
      for (const auto& url : nats_urls_) urls += (urls.empty() ? "" : ",") + url;
      auto conn = pipeline::nats::connect(urls, "chaos-diagnosis", 5s);
      auto js = pipeline::nats::jetstream(conn.get());
      jsConsumerInfo* ci = nullptr;
      if (js_GetConsumerInfo(&ci, js.get(), "EVENTS", "processor", nullptr, nullptr) == NATS_OK) {
        pipeline::nats::ConsumerInfoPtr info(ci);
        std::printf(
            "consumer: num_pending %llu num_ack_pending %lld num_redelivered %lld "
            "num_waiting %lld ack_floor %llu delivered %llu\n",
            static_cast<unsigned long long>(info->NumPending),
            static_cast<long long>(info->NumAckPending),
            static_cast<long long>(info->NumRedelivered), static_cast<long long>(info->NumWaiting),
            static_cast<unsigned long long>(info->AckFloor.Stream),
            static_cast<unsigned long long>(info->Delivered.Stream));
      }
    }
    EXPECT_TRUE(idle) << "not idle after 120 s: " << last_stats->dump();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  }

  // Checks the database against what the driver saw, prints the case line.
  void verify(const std::string& name, const LoadDriver& driver) {
    json stats;
    const double drain_s = drain(&stats);
    pqxx::connection conn(postgres_.url("chaos"));
    pqxx::read_transaction tx(conn);
    std::map<std::string, json> stored;
    for (const auto& row : tx.exec("SELECT topic || ':' || event_id, payload::text FROM events")) {
      stored[row[0].as<std::string>()] = json::parse(row[1].as<std::string>());
    }
    const auto duplicate_rows =
        tx.exec("SELECT count(*) - count(DISTINCT (topic, event_id)) FROM events")[0][0]
            .as<std::int64_t>();
    std::size_t acked = 0;
    std::size_t lost = 0;
    std::size_t unacked_stored = 0;
    std::size_t payload_mismatch = 0;
    std::size_t attempted = 0;
    for (std::size_t k = 0; k < driver.keys().size(); ++k) {
      const json& event = driver.keys()[k];
      const Fate fate = driver.fate(k);
      if (fate == Fate::kNotSent) continue;
      ++attempted;
      const auto it = stored.find(event["topic"].get<std::string>() + ":" +
                                  event["event_id"].get<std::string>());
      if (fate == Fate::kAcked) {
        ++acked;
        if (it == stored.end()) ++lost;
      } else if (it != stored.end()) {
        ++unacked_stored;
      }
      if (it != stored.end() && it->second != event["payload"]) ++payload_mismatch;
    }
    std::printf(
        "[chaos] %-34s attempted %zu | acked %zu | stored %zu | lost %zu | unacked-but-stored %zu "
        "| duplicate_rows %lld | payload_mismatch %zu | drain_s %.1f\n",
        name.c_str(), attempted, acked, stored.size(), lost, unacked_stored,
        static_cast<long long>(duplicate_rows), payload_mismatch, drain_s);
    std::fflush(stdout);
    EXPECT_EQ(lost, 0u);
    EXPECT_EQ(duplicate_rows, 0);
    EXPECT_EQ(payload_mismatch, 0u);
    EXPECT_GT(acked, driver.keys().size() / 3) << "too little got through to mean anything";
    EXPECT_EQ(stats["unique_processed"].get<std::size_t>(), stored.size()) << stats.dump();
    EXPECT_EQ(stats["dead_lettered"], 0) << stats.dump();
    // Every send that reached the broker is counted once, as stored or as a
    // duplicate: at least each acknowledged send, at most each send made.
    // (No answer or a 503 leaves it open whether the broker has it.)
    const auto received = stats["received"].get<std::size_t>();
    EXPECT_GE(received, driver.sends_acked()) << stats.dump();
    EXPECT_LE(received, driver.sends_made()) << stats.dump();
    if (::testing::Test::HasFailure()) dump_logs();
  }

  // The last lines of every service log, to see why a case failed.
  void dump_logs() const {
    for (const char* name : {"ingest.log", "processor.log"}) {
      const std::string command = "echo '--- " + std::string(name) +
                                  " (last 40 lines)'; tail -n 40 " + logs_.path() + "/" + name;
      // NOLINTNEXTLINE(concurrency-mt-unsafe,cert-env33-c): a test's diagnostics
      std::system(command.c_str());
    }
  }

 private:
  TempDir logs_{"chaos-logs"};
  PostgresCluster postgres_;
  std::vector<std::string> nats_urls_;
  int replicas_;
  std::uint16_t ingest_port_;
  Process ingest_;
  std::vector<Process> processors_;
};

// Runs `faults` on a thread while the driver publishes. Every fault is
// carried out (the case names give their counts); `done` tells the fault
// thread the load has ended, so that it stops pausing between faults.
void under_load(LoadDriver& driver, const std::function<void(const std::atomic<bool>&)>& faults) {
  std::atomic<bool> done{false};
  std::thread chaos([&] { faults(done); });
  driver.run(20ms, 60s);
  done = true;
  chaos.join();
}

// Sleeps up to `d`, or less once the load is done.
void pause(const std::atomic<bool>& done, std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (!done && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(10ms);
}

class Chaos : public ::testing::Test {
 protected:
  void start_single() {
    nats_ = std::make_unique<NatsServer>();
    stack_ = std::make_unique<ChaosStack>(std::vector<std::string>{nats_->url()});
    stack_->start_processor(0);
    stack_->start_processor(1);
    stack_->start_ingest();
  }
  static constexpr int kSends = 6000;
  std::unique_ptr<NatsServer> nats_;
  std::unique_ptr<ChaosStack> stack_;
};

TEST_F(Chaos, KillIngestRepeatedly) {
  start_single();
  LoadDriver driver(stack_->ingest_port(), kSends, 1);
  under_load(driver, [&](const std::atomic<bool>& done) {
    for (int i = 0; i < 4; ++i) {
      pause(done, 600ms);
      stack_->ingest().kill9();
      stack_->start_ingest();
    }
  });
  stack_->verify("kill -9 ingest x4", driver);
}

TEST_F(Chaos, KillProcessorsRepeatedly) {
  start_single();
  LoadDriver driver(stack_->ingest_port(), kSends, 2);
  under_load(driver, [&](const std::atomic<bool>& done) {
    for (int i = 0; i < 6; ++i) {
      pause(done, 400ms);
      const std::size_t victim = static_cast<std::size_t>(i % 2);
      stack_->processor(victim).kill9();
      stack_->start_processor(victim);
    }
  });
  stack_->verify("kill -9 processors x6", driver);
}

// Each named crash point: the process dies there (after a few batches or
// requests got through), is restarted with the fault armed again, three times.
class CrashPoint : public Chaos, public ::testing::WithParamInterface<const char*> {};

TEST_P(CrashPoint, CrashesThereLoseNothing) {
  const std::string point = GetParam();
  const bool in_ingest = point.rfind("ingest.", 0) == 0;
  start_single();
  LoadDriver driver(stack_->ingest_port(), kSends, 3);
  int crashes = 0;
  under_load(driver, [&](const std::atomic<bool>& done) {
    for (int round = 0; round < 3 && !done; ++round) {
      const std::vector<std::string> fault = {"FAULT_POINT=" + point,
                                              "FAULT_POINT_SKIP=" + std::to_string(5 + 7 * round)};
      Process& victim = in_ingest ? stack_->ingest() : stack_->processor(0);
      if (in_ingest) {
        victim.kill9();
        stack_->start_ingest(fault);
      } else {
        victim.kill9();
        stack_->start_processor(0, fault);
      }
      // Wait for the crash itself.
      wait_until([&] { return done || !victim.running(); }, 20s);
      if (!victim.running()) ++crashes;
    }
    // Leave healthy processes behind for the drain.
    if (in_ingest) {
      stack_->ingest().kill9();
      stack_->start_ingest();
    } else {
      stack_->processor(0).kill9();
      stack_->start_processor(0);
    }
  });
  if (!in_ingest) {
    // The load may end before the last crash; make sure a healthy one runs.
    if (!stack_->processor(0).running()) stack_->start_processor(0);
  }
  EXPECT_GT(crashes, 0) << "the process never reached " << point;
  stack_->verify("crash at " + point, driver);
}

INSTANTIATE_TEST_SUITE_P(Points, CrashPoint,
                         ::testing::Values("processor.after_insert_before_commit",
                                           "processor.after_commit_before_ack",
                                           "ingest.after_publish_before_response"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           for (char& c : name) {
                             if (c == '.') c = '_';
                           }
                           return name;
                         });

TEST_F(Chaos, KillNatsServerAndRestart) {
  start_single();
  LoadDriver driver(stack_->ingest_port(), kSends, 4);
  under_load(driver, [&](const std::atomic<bool>& done) {
    for (int i = 0; i < 2; ++i) {
      pause(done, 700ms);
      nats_->kill9();
      std::this_thread::sleep_for(300ms);
      nats_->start();
    }
  });
  stack_->verify("kill -9 nats-server x2", driver);
}

TEST_F(Chaos, KillPostgresAndRestart) {
  start_single();
  LoadDriver driver(stack_->ingest_port(), kSends, 5);
  under_load(driver, [&](const std::atomic<bool>& done) {
    for (int i = 0; i < 2; ++i) {
      pause(done, 700ms);
      stack_->postgres().kill9();
      std::this_thread::sleep_for(500ms);
      stack_->postgres().start();
    }
  });
  stack_->verify("kill -9 postgres postmaster x2", driver);
  // Ingest does not need PostgreSQL to accept events (broker duplicates are
  // counted through the stream): the database's outages cost no client a 2xx.
  EXPECT_EQ(driver.sends_acked(), driver.sends_made());
}

TEST_F(Chaos, StopProcessorLongerThanAckWait) {
  start_single();
  LoadDriver driver(stack_->ingest_port(), kSends, 6);
  under_load(driver, [&](const std::atomic<bool>& done) {
    pause(done, 500ms);
    ::kill(stack_->processor(0).pid(), SIGSTOP);
    std::this_thread::sleep_for(5s);  // AckWait is 2 s: its batch is redelivered
    ::kill(stack_->processor(0).pid(), SIGCONT);
  });
  stack_->verify("SIGSTOP processor 5s > AckWait", driver);
}

// SIGTERM is a clean stop: each service finishes what it holds and exits 0.
// The processor commits and acks the batch in hand (with one processor, the
// broker then holds no unacked message); ingest answers the requests in
// flight. Both are restarted and nothing is lost.
TEST_F(Chaos, SigtermStopsEachServiceCleanly) {
  nats_ = std::make_unique<NatsServer>();
  stack_ = std::make_unique<ChaosStack>(std::vector<std::string>{nats_->url()});
  stack_->start_processor(0);
  stack_->start_ingest();
  auto conn = pipeline::nats::connect(nats_->url(), "chaos-test", 10s);
  auto js = pipeline::nats::jetstream(conn.get());
  const auto ack_pending = [&]() -> std::int64_t {
    jsConsumerInfo* ci = nullptr;
    if (js_GetConsumerInfo(&ci, js.get(), "EVENTS", "processor", nullptr, nullptr) != NATS_OK) {
      return -1;
    }
    pipeline::nats::ConsumerInfoPtr info(ci);
    return info->NumAckPending;
  };

  LoadDriver driver(stack_->ingest_port(), kSends, 8);
  int processor_status = -1;
  int ingest_status = -1;
  bool acks_sent = false;
  double processor_stop_s = 0;
  under_load(driver, [&](const std::atomic<bool>& done) {
    pause(done, 700ms);
    const auto t0 = std::chrono::steady_clock::now();
    processor_status = stack_->processor(0).stop(SIGTERM, 20s);
    processor_stop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // No other processor runs: whatever is still unacked was dropped unacked.
    acks_sent = wait_until([&] { return ack_pending() == 0; }, 1s);
    stack_->start_processor(0);
    pause(done, 700ms);
    ingest_status = stack_->ingest().stop(SIGTERM, 20s);
    stack_->start_ingest();
  });
  std::printf("[chaos] SIGTERM: processor exit status %d after %.2f s, ingest exit status %d\n",
              processor_status, processor_stop_s, ingest_status);
  EXPECT_TRUE(WIFEXITED(processor_status) && WEXITSTATUS(processor_status) == 0)
      << processor_status;
  EXPECT_TRUE(acks_sent) << "unacked messages after the processor's clean stop: " << ack_pending();
  EXPECT_TRUE(WIFEXITED(ingest_status) && WEXITSTATUS(ingest_status) == 0) << ingest_status;
  stack_->verify("SIGTERM processor, then ingest", driver);
}

// Three JetStream nodes on loopback, the stream replicated three times.
TEST_F(Chaos, ClusterLosesANodeThenTheStreamLeader) {
  const std::uint16_t client_ports[] = {free_port(), free_port(), free_port()};
  const std::uint16_t route_ports[] = {free_port(), free_port(), free_port()};
  std::vector<std::unique_ptr<NatsServer>> nodes;
  std::vector<std::string> urls;
  for (int n = 0; n < 3; ++n) {
    std::string routes;
    for (int m = 0; m < 3; ++m) {
      if (m == n) continue;
      routes += (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") +
                std::to_string(route_ports[m]);
    }
    nodes.push_back(std::make_unique<NatsServer>(
        std::vector<std::string>{"-n", "node" + std::to_string(n), "--cluster_name", "chaos",
                                 "--cluster", "nats://127.0.0.1:" + std::to_string(route_ports[n]),
                                 "--routes", routes},
        client_ports[n]));
    urls.push_back(nodes.back()->url());
  }
  // The meta leader must be elected before a replicated stream can be made.
  pipeline::nats::StreamSettings stream;
  stream.replicas = 3;
  auto conn = pipeline::nats::connect(urls[0] + "," + urls[1] + "," + urls[2], "chaos-test", 30s);
  auto js = pipeline::nats::jetstream(conn.get());
  ASSERT_TRUE(wait_until(
      [&] {
        try {
          pipeline::nats::ensure_stream(js.get(), stream);
          return true;
        } catch (const std::exception&) {
          return false;
        }
      },
      60s));
  const auto leader = [&]() -> int {
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, js.get(), stream.name.c_str(), nullptr, nullptr) != NATS_OK) {
      return -1;
    }
    pipeline::nats::StreamInfoPtr info(si);
    if (info->Cluster == nullptr || info->Cluster->Leader == nullptr) return -1;
    return info->Cluster->Leader[4] - '0';  // "nodeN"
  };

  stack_ = std::make_unique<ChaosStack>(urls, 3);
  stack_->start_processor(0);
  stack_->start_processor(1);
  stack_->start_ingest();
  LoadDriver driver(stack_->ingest_port(), kSends, 7);
  under_load(driver, [&](const std::atomic<bool>& done) {
    pause(done, 600ms);
    int current = -1;
    wait_until([&] { return (current = leader()) >= 0; }, 10s);
    const int follower = (current + 1) % 3;
    nodes[static_cast<std::size_t>(follower)]->kill9();
    pause(done, 800ms);
    nodes[static_cast<std::size_t>(follower)]->start();
    pause(done, 800ms);
    wait_until([&] { return (current = leader()) >= 0; }, 10s);
    if (current >= 0) {
      nodes[static_cast<std::size_t>(current)]->kill9();
      pause(done, 800ms);
      nodes[static_cast<std::size_t>(current)]->start();
    }
  });
  stack_->verify("R3 cluster: kill node, then leader", driver);
}

}  // namespace
}  // namespace testsupport
