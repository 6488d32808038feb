// Chaos tests: the real ingest and processor executables, a real nats-server
// (or a three-node JetStream cluster) and a real PostgreSQL, with faults
// carried out for real while a driver publishes events with 30% repeats:
// processes killed (-9), stopped and crashed at named points; disks that
// fill up (tmpfs); a connection cut in the middle of COMMIT; a consumer and
// a stream deleted and created again; restarts with other settings. Then a
// drain, and a check against PostgreSQL and /stats:
// - nothing that got a 2xx is lost;
// - the first write of a key wins (each repeat carries another payload);
// - nothing is stored or counted twice: the duplicates counted lie between
//   the repeats that were acknowledged and those that were sent, the gap
//   being the requests a fault cut short;
// - nothing went to dead_letters.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "commit_cutter.hpp"
#include "http_client.hpp"
#include "pipeline/database.hpp"
#include "pipeline/jetstream.hpp"
#include "servers.hpp"

namespace testsupport {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// What one send (one event in one request) came to.
enum class Fate {
  kNotSent,
  kUncertain,  ///< no answer, or a 5xx / "failed": the broker may or may not have it
  kAcked,      ///< a 2xx with "accepted" or "duplicate": the broker has it, counted
};

// Publishes `sends` events from four clients, ten to a request, paced so
// that the load lasts a few seconds. 30% of the sends repeat an earlier key
// with another payload (version 1, 2, ...); a key is repeated only once its
// previous send was answered, so that its first send is its first write.
// Bounded in count and in time.
class LoadDriver {
 public:
  LoadDriver(std::uint16_t port, int sends, std::uint32_t seed, std::string prefix = "ev")
      : port_(port) {
    std::mt19937 random(seed);
    std::uniform_real_distribution<double> coin(0, 1);
    std::vector<int> versions;
    for (int i = 0; i < sends; ++i) {
      if (!versions.empty() && coin(random) < 0.3) {
        const std::size_t k = random() % versions.size();
        sends_.push_back({k, versions[k]++});
      } else {
        sends_.push_back({versions.size(), 0});
        versions.push_back(1);
      }
    }
    keys_ = versions.size();
    prefix_ = std::move(prefix);
    fates_.assign(sends_.size(), Fate::kNotSent);
    answered_ = std::make_unique<std::atomic<bool>[]>(keys_);
    for (std::size_t k = 0; k < keys_; ++k) answered_[k] = false;
  }

  json event(std::size_t key, int version) const {
    return {{"topic", "chaos." + std::to_string(key % 4)},
            {"event_id", prefix_ + "-" + std::to_string(key)},
            {"timestamp", "2026-11-24T10:00:00Z"},
            {"source", "chaos"},
            {"payload", {{"n", key}, {"version", version}}}};
  }
  std::string key_name(std::size_t key) const {
    return "chaos." + std::to_string(key % 4) + ":" + prefix_ + "-" + std::to_string(key);
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
          std::set<std::size_t> in_batch;
          for (std::size_t i = start; i < end; ++i) {
            const Send& send = sends_[i];
            // A repeat waits for the key's earlier send to be answered (in
            // the same request, the earlier send comes first anyway).
            if (send.version > 0 && in_batch.insert(send.key).second) {
              while (!answered_[send.key] && std::chrono::steady_clock::now() < deadline) {
                std::this_thread::sleep_for(1ms);
              }
            }
            in_batch.insert(send.key);
            batch.push_back(event(send.key, send.version));
          }
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

  std::size_t keys() const { return keys_; }
  /// The fate of each send of `key`, in order.
  std::vector<Fate> fates(std::size_t key) const {
    std::vector<std::pair<int, Fate>> found;
    for (std::size_t i = 0; i < sends_.size(); ++i) {
      if (sends_[i].key == key) found.emplace_back(sends_[i].version, fates_[i]);
    }
    std::sort(found.begin(), found.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Fate> out;
    for (const auto& f : found) out.push_back(f.second);
    return out;
  }
  std::size_t sends_made() const { return count(Fate::kUncertain) + count(Fate::kAcked); }
  std::size_t sends_acked() const { return count(Fate::kAcked); }
  std::size_t sends_uncertain() const { return count(Fate::kUncertain); }
  std::size_t requests() const { return requests_; }
  std::size_t requests_503() const { return requests_503_; }
  std::size_t requests_unanswered() const { return requests_unanswered_; }

 private:
  struct Send {
    std::size_t key;
    int version;
  };

  std::size_t count(Fate fate) const {
    return static_cast<std::size_t>(std::count(fates_.begin(), fates_.end(), fate));
  }

  void record(std::size_t start, std::size_t end, const HttpResponse& response) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++requests_;
    if (response.status == 503) ++requests_503_;
    if (response.status == 0) ++requests_unanswered_;
    json body;
    if (response.status != 0) body = json::parse(response.body, nullptr, false);
    for (std::size_t i = start; i < end; ++i) {
      Fate fate = Fate::kUncertain;
      const std::size_t index = i - start;
      if (body.is_object() && body.contains("results") && index < body["results"].size()) {
        const auto& status = body["results"][index]["status"];
        // A result counts only in a 2xx answer: that is the promise.
        if (response.status / 100 == 2 && (status == "accepted" || status == "duplicate")) {
          fate = Fate::kAcked;
        }
      }
      fates_[i] = fate;
      answered_[sends_[i].key] = true;
    }
  }

  std::uint16_t port_;
  std::string prefix_;
  std::size_t keys_ = 0;
  std::vector<Send> sends_;
  std::unique_ptr<std::atomic<bool>[]> answered_;
  std::mutex mutex_;
  std::vector<Fate> fates_;
  std::size_t requests_ = 0;
  std::size_t requests_503_ = 0;
  std::size_t requests_unanswered_ = 0;
};

// The JetStream API as a test needs it: look at, delete, wait for.
class Broker {
 public:
  explicit Broker(const std::string& urls)
      : conn_(pipeline::nats::connect(urls, "chaos-admin", 30s)),
        js_(pipeline::nats::jetstream(conn_.get())) {}

  jsCtx* js() { return js_.get(); }
  std::optional<std::int64_t> ack_pending() {
    jsConsumerInfo* ci = nullptr;
    if (js_GetConsumerInfo(&ci, js_.get(), "EVENTS", "processor", nullptr, nullptr) != NATS_OK) {
      return std::nullopt;
    }
    pipeline::nats::ConsumerInfoPtr info(ci);
    return info->NumAckPending;
  }
  /// The running stream's max_bytes, or nullopt when it does not answer.
  std::optional<std::int64_t> max_bytes(std::chrono::milliseconds wait = 2s) {
    jsOptions opts;
    jsOptions_Init(&opts);
    opts.Wait = wait.count();
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, js_.get(), "EVENTS", &opts, nullptr) != NATS_OK) return std::nullopt;
    pipeline::nats::StreamInfoPtr info(si);
    return info->Config->MaxBytes;
  }
  bool delete_consumer() {
    return js_DeleteConsumer(js_.get(), "EVENTS", "processor", nullptr, nullptr) == NATS_OK;
  }
  bool delete_stream() { return js_DeleteStream(js_.get(), "EVENTS", nullptr, nullptr) == NATS_OK; }

 private:
  pipeline::nats::ConnectionPtr conn_;
  pipeline::nats::JetStreamPtr js_;
};

// The stack under test, with each service as a real process.
class ChaosStack {
 public:
  explicit ChaosStack(std::vector<std::string> nats_urls, int replicas = 1,
                      const std::string& pg_parent = "")
      : postgres_(pg_parent),
        nats_urls_(std::move(nats_urls)),
        replicas_(replicas),
        ingest_port_(free_port()) {
    pqxx::connection conn(postgres_.url());
    pqxx::nontransaction tx(conn);
    tx.exec("CREATE DATABASE chaos");
    // The schema, as a processor that ran before would have made it: the
    // cases start ingest first at times, and ingest never writes it.
    pqxx::connection db(postgres_.url("chaos"));
    pipeline::db::apply_migrations(db);
  }

  std::string nats_urls() const {
    std::string urls;
    for (const auto& url : nats_urls_) urls += (urls.empty() ? "" : ",") + url;
    return urls;
  }

  // Extra variables come last: they win over the defaults.
  std::vector<std::string> env(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> vars = {
        "NATS_URL=" + nats_urls(),
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
        "PROCESSOR_RETRY_DELAY=100ms",
        "PROCESSOR_MAX_RETRY_DELAY=1s",
        // Pruning runs all the time: it must never make a count wrong.
        "PROCESSOR_PRUNE_INTERVAL=500ms",
        "PROCESSOR_METRICS_ADDRESS=127.0.0.1:0",
    };
    vars.insert(vars.end(), common_.begin(), common_.end());
    vars.insert(vars.end(), extra.begin(), extra.end());
    return vars;
  }
  /// Variables every process of this stack gets (after the defaults).
  void set_common(std::vector<std::string> vars) { common_ = std::move(vars); }

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
  const std::string& logs() const { return logs_.path(); }

  /// True when a service log (or, with a path, any file) has a line
  /// containing `text`.
  bool logged(const std::string& file, const std::string& text) const {
    std::ifstream in(file.find('/') == std::string::npos ? logs_.path() + "/" + file : file);
    std::string line;
    while (std::getline(in, line)) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

  // Waits until the broker holds nothing unsettled; returns /stats then.
  // /stats reads the broker before the database, so once `pending` is 0
  // every message was committed before the counters were read.
  json drain(double* seconds) {
    const auto started = std::chrono::steady_clock::now();
    HttpClient client(ingest_port_, 5000);
    json last;
    const bool idle = wait_until(
        [&] {
          const HttpResponse response = client.get("/stats");
          if (response.status != 200) return false;
          last = json::parse(response.body);
          return last["pending"] == 0;
        },
        90s);
    EXPECT_TRUE(idle) << "not idle after 90 s: " << last.dump();
    *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return last;
  }

  // Checks the database and /stats against what the drivers saw, prints the
  // case line.
  void verify(const std::string& name, const std::vector<const LoadDriver*>& drivers,
              const std::string& extra = "") {
    double drain_s = 0;
    const json stats = drain(&drain_s);
    pqxx::connection conn(postgres_.url("chaos"));
    pqxx::read_transaction tx(conn);
    std::map<std::string, json> stored;
    for (const auto& row : tx.exec("SELECT topic || ':' || event_id, payload::text FROM events")) {
      stored[row[0].as<std::string>()] = json::parse(row[1].as<std::string>());
    }
    const auto dead_letters = tx.exec1("SELECT count(*) FROM dead_letters")[0].as<std::int64_t>();
    std::size_t acked_keys = 0;
    std::size_t lost = 0;
    std::size_t first_write_checked = 0;
    std::size_t first_write_lost = 0;
    std::size_t sends_acked = 0;
    std::size_t sends_made = 0;
    std::size_t requests = 0;
    std::size_t requests_503 = 0;
    std::size_t unanswered = 0;
    // A key sent by two drivers (a later phase repeating an earlier one's
    // keys) is judged over all its sends.
    std::map<std::string, std::vector<Fate>> fates;
    for (const LoadDriver* driver : drivers) {
      sends_acked += driver->sends_acked();
      sends_made += driver->sends_made();
      requests += driver->requests();
      requests_503 += driver->requests_503();
      unanswered += driver->requests_unanswered();
      for (std::size_t k = 0; k < driver->keys(); ++k) {
        auto& all = fates[driver->key_name(k)];
        for (const Fate f : driver->fates(k)) all.push_back(f);
      }
    }
    for (const auto& [key, key_fates] : fates) {
      const bool acked =
          std::find(key_fates.begin(), key_fates.end(), Fate::kAcked) != key_fates.end();
      const auto it = stored.find(key);
      if (acked) {
        ++acked_keys;
        if (it == stored.end()) ++lost;
      }
      // The first send of the key was acknowledged: its payload (version 0)
      // is the one stored, whatever the later sends did.
      if (!key_fates.empty() && key_fates.front() == Fate::kAcked && it != stored.end()) {
        ++first_write_checked;
        if (it->second["version"] != 0) ++first_write_lost;
      }
    }
    // Each send that reached the broker is counted once: the one stored per
    // key, every other as a duplicate. Acknowledged sends reached it;
    // uncertain ones may have.
    const auto duplicates = stats["duplicate_dropped"].get<std::int64_t>();
    const auto low =
        static_cast<std::int64_t>(sends_acked) - static_cast<std::int64_t>(stored.size());
    const auto high =
        static_cast<std::int64_t>(sends_made) - static_cast<std::int64_t>(stored.size());
    std::printf(
        "[chaos] %-40s sends %zu (acked %zu) | requests %zu (503 %.1f%%, unanswered %zu) | stored "
        "%zu | lost %zu | first_write_lost %zu of %zu | duplicates %lld in [%lld, %lld] (broker "
        "%lld, database %lld) | dead_letters %lld | drain_s %.1f%s\n",
        name.c_str(), sends_made, sends_acked, requests,
        requests == 0 ? 0.0
                      : 100.0 * static_cast<double>(requests_503) / static_cast<double>(requests),
        unanswered, stored.size(), lost, first_write_lost, first_write_checked,
        static_cast<long long>(duplicates), static_cast<long long>(low),
        static_cast<long long>(high), stats["duplicates_by_stage"]["broker"].get<long long>(),
        stats["duplicates_by_stage"]["database"].get<long long>(),
        static_cast<long long>(dead_letters), drain_s, extra.c_str());
    std::fflush(stdout);
    EXPECT_EQ(lost, 0u);
    EXPECT_EQ(first_write_lost, 0u);
    EXPECT_GT(acked_keys, fates.size() / 3) << "too little got through to mean anything";
    EXPECT_EQ(stats["unique_processed"].get<std::size_t>(), stored.size()) << stats.dump();
    EXPECT_EQ(stats["dead_lettered"], 0) << stats.dump();
    EXPECT_EQ(dead_letters, 0);
    EXPECT_GE(duplicates, low) << "duplicates went uncounted: " << stats.dump();
    EXPECT_LE(duplicates, high) << "duplicates counted twice: " << stats.dump();
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
  std::vector<std::string> common_;
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
  void start_single(const std::vector<std::string>& common = {}, const std::string& pg_parent = "",
                    const std::string& nats_store_parent = "") {
    nats_ = nats_store_parent.empty()
                ? std::make_unique<NatsServer>()
                : std::make_unique<NatsServer>(std::vector<std::string>{}, free_port(),
                                               nats_store_parent);
    stack_ = std::make_unique<ChaosStack>(std::vector<std::string>{nats_->url()}, 1, pg_parent);
    stack_->set_common(common);
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
  stack_->verify("kill -9 ingest x4", {&driver});
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
  stack_->verify("kill -9 processors x6", {&driver});
}

// Repeats after the broker's window (1 s here) reach the database: its
// UNIQUE constraint, its duplicate records and their pruning carry real
// load, with processors killed meanwhile.
TEST_F(Chaos, RepeatsAfterTheBrokerWindowWithProcessorsKilled) {
  start_single({"STREAM_DUPLICATE_WINDOW=1s"});
  LoadDriver driver(stack_->ingest_port(), 9000, 12);
  under_load(driver, [&](const std::atomic<bool>& done) {
    for (int i = 0; i < 4; ++i) {
      pause(done, 700ms);
      const std::size_t victim = static_cast<std::size_t>(i % 2);
      stack_->processor(victim).kill9();
      stack_->start_processor(victim);
    }
  });
  stack_->verify("window 1s, kill -9 processors x4", {&driver});
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
      victim.kill9();
      if (in_ingest) {
        stack_->start_ingest(fault);
      } else {
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
  if (!in_ingest && !stack_->processor(0).running()) stack_->start_processor(0);
  EXPECT_GT(crashes, 0) << "the process never reached " << point;
  stack_->verify("crash at " + point, {&driver}, " | crashes " + std::to_string(crashes));
}

INSTANTIATE_TEST_SUITE_P(Points, CrashPoint,
                         ::testing::Values("processor.after_insert_before_commit",
                                           "processor.after_commit_before_ack",
                                           "ingest.after_pubacks_before_marker",
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
  stack_->verify("kill -9 nats-server x2", {&driver});
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
  stack_->verify("kill -9 postgres postmaster x2", {&driver});
  // Ingest does not need PostgreSQL to accept events (broker duplicates are
  // counted through the stream): the database's outages cost no client a 2xx.
  EXPECT_EQ(driver.sends_acked(), driver.sends_made());
}

// A worker stopped longer than AckWait and than the prune interval holds a
// batch that was meanwhile redelivered, stored, acked and pruned around;
// when it resumes, it commits that batch late: nothing counted twice.
TEST_F(Chaos, WorkerPausedPastAckWaitAndPruning) {
  start_single({"STREAM_DUPLICATE_WINDOW=1s"});
  LoadDriver driver(stack_->ingest_port(), kSends, 6);
  under_load(driver, [&](const std::atomic<bool>& done) {
    pause(done, 1500ms);
    ::kill(stack_->processor(0).pid(), SIGSTOP);
    std::this_thread::sleep_for(5s);  // AckWait 2 s, prune every 500 ms
    ::kill(stack_->processor(0).pid(), SIGCONT);
  });
  stack_->verify("SIGSTOP processor 5s > AckWait, prune", {&driver});
}

// SIGTERM is a clean stop: each service finishes what it holds and exits 0.
// The processor commits and acks the batch in hand and whatever a pull
// request delivered after its last Fetch (with one processor, the broker
// then holds no unacked message); ingest answers the requests in flight.
TEST_F(Chaos, SigtermStopsEachServiceCleanly) {
  nats_ = std::make_unique<NatsServer>();
  stack_ = std::make_unique<ChaosStack>(std::vector<std::string>{nats_->url()});
  stack_->start_processor(0);
  stack_->start_ingest();
  Broker broker(nats_->url());

  LoadDriver driver(stack_->ingest_port(), kSends, 8);
  int processor_status = -1;
  int ingest_status = -1;
  bool acks_sent = false;
  double processor_stop_s = 0;
  double ingest_stop_s = 0;
  under_load(driver, [&](const std::atomic<bool>& done) {
    pause(done, 700ms);
    auto t0 = std::chrono::steady_clock::now();
    processor_status = stack_->processor(0).stop(SIGTERM, 20s);
    processor_stop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // No other processor runs: whatever is still unacked was dropped unacked.
    acks_sent = wait_until([&] { return broker.ack_pending() == 0; }, 1s);
    stack_->start_processor(0);
    pause(done, 700ms);
    t0 = std::chrono::steady_clock::now();
    ingest_status = stack_->ingest().stop(SIGTERM, 20s);
    ingest_stop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stack_->start_ingest();
  });
  std::printf(
      "[chaos] SIGTERM: processor exit status %d after %.2f s, ingest exit status %d after %.2f "
      "s\n",
      processor_status, processor_stop_s, ingest_status, ingest_stop_s);
  EXPECT_TRUE(WIFEXITED(processor_status) && WEXITSTATUS(processor_status) == 0)
      << processor_status;
  EXPECT_TRUE(acks_sent) << "unacked messages after the processor's clean stop: "
                         << broker.ack_pending().value_or(-1);
  EXPECT_TRUE(WIFEXITED(ingest_status) && WEXITSTATUS(ingest_status) == 0) << ingest_status;
  stack_->verify("SIGTERM processor, then ingest", {&driver});
}

// PostgreSQL's data directory on a small tmpfs that fills up under load,
// then gets room again: the writes that failed are retried, none is
// dead-lettered. (A full WAL can make PostgreSQL stop: then it is started
// again, as an operator would.)
TEST_F(Chaos, PostgresRunsOutOfDisk) {
  TmpfsMount disk(std::size_t{512} << 20);
  start_single({}, disk.path());
  LoadDriver driver(stack_->ingest_port(), kSends, 9);
  bool restarted = false;
  under_load(driver, [&](const std::atomic<bool>& done) {
    pause(done, 800ms);
    disk.fill(64 * 1024);
    std::this_thread::sleep_for(3s);
    disk.make_room();
    if (!wait_until(
            [&] {
              try {
                pqxx::connection probe(stack_->postgres().url("chaos"));
                return true;
              } catch (const std::exception&) {
                return false;
              }
            },
            3s)) {
      stack_->postgres().kill9();
      stack_->postgres().start();
      restarted = true;
    }
  });
  EXPECT_TRUE(stack_->logged(stack_->postgres().log_path(), "No space left on device"))
      << "the disk never filled: the fault was not carried out";
  const bool retried = stack_->logged("processor.log", "failure=retry_later");
  stack_->verify("postgres out of disk (tmpfs)", {&driver},
                 std::string(retried ? " | disk_full retried" : "") +
                     (restarted ? " | postgres restarted" : ""));
}

// nats-server's store on a small tmpfs that fills up: publishes get 503, no
// 2xx without storage; then the disk gets room. nats-server 2.9.10 may stop
// answering for the stream after a failed write and does not stop on
// SIGTERM then: it is killed and started again, as an operator would.
TEST_F(Chaos, NatsServerRunsOutOfDisk) {
  TmpfsMount disk(std::size_t{64} << 20);
  start_single({}, "", disk.path());
  Broker broker(nats_->url());
  LoadDriver driver(stack_->ingest_port(), kSends, 10);
  std::size_t refused_while_full = 0;
  bool restarted = false;
  under_load(driver, [&](const std::atomic<bool>& done) {
    pause(done, 800ms);
    const std::size_t before = driver.requests_503();
    disk.fill(0);
    wait_until([&] { return done || driver.requests_503() > before + 5; }, 10s);
    refused_while_full = driver.requests_503() - before;
    disk.make_room();
    if (!broker.max_bytes(3s)) {
      nats_->kill9();
      nats_->start();
      restarted = true;
    }
  });
  EXPECT_GT(refused_while_full, 0u) << "no publish failed while the disk was full";
  stack_->verify("nats-server out of disk (tmpfs)", {&driver},
                 " | 503 while full " + std::to_string(refused_while_full) +
                     (restarted ? " | nats-server restarted" : ""));
}

// A proxy between the processor and PostgreSQL cuts every seventh
// connection right after forwarding its COMMIT: the commit's outcome is
// unknown to the processor. Nothing is dead-lettered, nothing counted twice.
TEST_F(Chaos, ConnectionCutDuringCommit) {
  nats_ = std::make_unique<NatsServer>();
  stack_ = std::make_unique<ChaosStack>(std::vector<std::string>{nats_->url()});
  CommitCutter cutter(stack_->postgres().port(), 7);
  const std::string via_proxy =
      "DATABASE_URL=host=127.0.0.1 port=" + std::to_string(cutter.port()) +
      " user=postgres dbname=chaos connect_timeout=5";
  stack_->start_processor(0, {via_proxy});
  stack_->start_processor(1, {via_proxy});
  stack_->start_ingest();
  LoadDriver driver(stack_->ingest_port(), kSends, 11);
  under_load(driver, [&](const std::atomic<bool>&) {});
  cutter.set_cutting(false);  // let the drain finish
  EXPECT_GT(cutter.cuts(), 0) << "no COMMIT was cut";
  EXPECT_TRUE(stack_->logged("processor.log", "outcome_unknown"))
      << "the processor never saw an unknown commit outcome";
  stack_->verify("connection cut during COMMIT", {&driver},
                 " | commits cut " + std::to_string(cutter.cuts()) + " of " +
                     std::to_string(cutter.commits()));
}

// The durable consumer deleted twice under load: the processors create it
// again, and deliver-all replays the whole stream; every message is
// recognised, nothing counted twice.
TEST_F(Chaos, ConsumerDeletedAndCreatedAgain) {
  start_single({"STREAM_DUPLICATE_WINDOW=1s"});
  Broker broker(nats_->url());
  LoadDriver driver(stack_->ingest_port(), kSends, 13);
  int deleted = 0;
  under_load(driver, [&](const std::atomic<bool>& done) {
    for (int i = 0; i < 2; ++i) {
      pause(done, 1200ms);
      if (broker.delete_consumer()) ++deleted;
      // The processors make it again when their next pull fails.
      wait_until([&] { return broker.ack_pending().has_value(); }, 10s);
    }
  });
  EXPECT_EQ(deleted, 2);
  stack_->verify("consumer deleted and created again x2", {&driver});
}

// The stream deleted (once the pipeline is idle: deleting it under load
// destroys accepted events by definition) and created again by the
// processors; its sequences restart at 1. A second round of load repeats
// the first round's keys and adds new ones: stored once, counted right.
TEST_F(Chaos, StreamDeletedAndCreatedAgain) {
  start_single();
  Broker broker(nats_->url());
  LoadDriver first(stack_->ingest_port(), 3000, 14);
  under_load(first, [&](const std::atomic<bool>& done) {
    pause(done, 600ms);
    stack_->processor(1).kill9();
    stack_->start_processor(1);
  });
  double drained = 0;
  stack_->drain(&drained);
  ASSERT_TRUE(broker.delete_stream());
  ASSERT_TRUE(wait_until([&] { return broker.max_bytes().has_value(); }, 30s))
      << "the processors did not create the stream again";
  LoadDriver second(stack_->ingest_port(), kSends, 14);  // the same keys first, then more
  under_load(second, [&](const std::atomic<bool>& done) {
    pause(done, 600ms);
    stack_->processor(0).kill9();
    stack_->start_processor(0);
  });
  stack_->verify("stream deleted and created again", {&first, &second});
}

// Processors paused while the load goes on, so events wait in the stream;
// ingest restarted with far smaller stream limits and the processors with
// other consumer settings. The running stream keeps its configuration
// (STREAM_UPDATE=keep): nothing it holds is deleted.
TEST_F(Chaos, RestartsWithOtherSettingsDeleteNothing) {
  start_single();
  Broker broker(nats_->url());
  LoadDriver driver(stack_->ingest_port(), kSends, 15);
  under_load(driver, [&](const std::atomic<bool>& done) {
    pause(done, 500ms);
    ::kill(stack_->processor(0).pid(), SIGSTOP);
    ::kill(stack_->processor(1).pid(), SIGSTOP);
    pause(done, 1000ms);
    stack_->ingest().kill9();
    stack_->start_ingest(
        {"STREAM_MAX_BYTES=20000", "STREAM_MAX_AGE=1s", "STREAM_DUPLICATE_WINDOW=500ms"});
    pause(done, 500ms);
    for (std::size_t i = 0; i < 2; ++i) {
      stack_->processor(i).kill9();
      stack_->start_processor(
          i, {"STREAM_MAX_BYTES=10000", "CONSUMER_ACK_WAIT=30s", "CONSUMER_MAX_ACK_PENDING=500"});
    }
  });
  EXPECT_EQ(broker.max_bytes(), -1) << "a restart changed the running stream";
  EXPECT_TRUE(stack_->logged("ingest.log", "stream_settings_differ"));
  stack_->verify("restarts with smaller limits", {&driver});
}

// Three JetStream nodes on loopback, the stream replicated three times; a
// follower is killed, then the stream's leader. Ingest publishes again
// within INGEST_PUBLISH_TIMEOUT while the stream has no leader; the share
// of 503s is in the case line. A duplicate PubAck with sequence 0 is never
// a 2xx (it would show as a lost event).
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
  Broker broker(urls[0] + "," + urls[1] + "," + urls[2]);
  ASSERT_TRUE(wait_until(
      [&] {
        try {
          pipeline::nats::ensure_stream(broker.js(), stream);
          return true;
        } catch (const std::exception&) {
          return false;
        }
      },
      60s));
  const auto leader = [&]() -> int {
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, broker.js(), stream.name.c_str(), nullptr, nullptr) != NATS_OK) {
      return -1;
    }
    pipeline::nats::StreamInfoPtr info(si);
    if (info->Cluster == nullptr || info->Cluster->Leader == nullptr) return -1;
    return info->Cluster->Leader[4] - '0';  // "nodeN"
  };

  stack_ = std::make_unique<ChaosStack>(urls, 3);
  stack_->set_common({"INGEST_PUBLISH_TIMEOUT=5s"});
  stack_->start_processor(0);
  stack_->start_processor(1);
  stack_->start_ingest();
  LoadDriver driver(stack_->ingest_port(), kSends, 7);
  int follower_killed = -1;
  int leader_killed = -1;
  under_load(driver, [&](const std::atomic<bool>& done) {
    pause(done, 600ms);
    int current = -1;
    wait_until([&] { return (current = leader()) >= 0; }, 10s);
    if (current < 0) return;  // fails below: the fault was not carried out
    follower_killed = (current + 1) % 3;
    nodes[static_cast<std::size_t>(follower_killed)]->kill9();
    pause(done, 800ms);
    nodes[static_cast<std::size_t>(follower_killed)]->start();
    pause(done, 800ms);
    current = -1;
    wait_until([&] { return (current = leader()) >= 0; }, 10s);
    if (current < 0) return;
    leader_killed = current;
    nodes[static_cast<std::size_t>(current)]->kill9();
    pause(done, 800ms);
    nodes[static_cast<std::size_t>(current)]->start();
  });
  ASSERT_GE(follower_killed, 0) << "no stream leader found: the fault was not carried out";
  ASSERT_GE(leader_killed, 0) << "no stream leader found: the fault was not carried out";
  stack_->verify("R3 cluster: kill node, then leader", {&driver},
                 " | killed node" + std::to_string(follower_killed) + ", then leader node" +
                     std::to_string(leader_killed));
}

}  // namespace
}  // namespace testsupport
