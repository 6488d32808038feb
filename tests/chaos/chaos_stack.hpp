#pragma once

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
#include "load_driver.hpp"
#include "sse_client.hpp"

namespace testsupport {

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

// The executable under test: this build's, or another one named by the
// variable (to show what an older build fails).
inline std::string binary(const char* variable, const char* built) {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): read before any thread of the case
  const char* other = std::getenv(variable);
  return other != nullptr ? other : built;
}

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
    ingest_ = Process({binary("CHAOS_INGEST_BINARY", INGEST_BINARY)}, logs_.path() + "/ingest.log",
                      env(extra));
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
    processors_[i] = Process({binary("CHAOS_PROCESSOR_BINARY", PROCESSOR_BINARY)},
                             logs_.path() + "/processor.log", env(extra));
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
  json drain(double* seconds) const {
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
  // Every stored key, "<topic>:<event_id>".
  std::set<std::string> stored_keys() {
    pqxx::connection conn(postgres_.url("chaos"));
    pqxx::read_transaction tx(conn);
    std::set<std::string> keys;
    for (const auto& row : tx.exec("SELECT topic || ':' || event_id FROM events")) {
      keys.insert(row[0].as<std::string>());
    }
    return keys;
  }

  void verify(const std::string& name, const std::vector<const LoadDriver*>& drivers,
              const std::string& extra = "") {
    double drain_s = 0;
    const json stats = drain(&drain_s);
    pqxx::connection conn(postgres_.url("chaos"));
    pqxx::read_transaction tx(conn);
    std::map<std::string, json> stored;
    std::size_t probes = 0;  // events a case published itself (topics probe.*), not the drivers
    for (const auto& row : tx.exec("SELECT topic || ':' || event_id, payload::text FROM events")) {
      const std::string key = row[0].as<std::string>();
      if (key.rfind("probe.", 0) == 0) {
        ++probes;
        continue;
      }
      stored[key] = json::parse(row[1].as<std::string>());
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
    EXPECT_EQ(stats["unique_processed"].get<std::size_t>(), stored.size() + probes) << stats.dump();
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
// A subscription's events against the stored keys that start with
// `prefix`: each exactly once (nothing missing, nothing twice), in cursor
// order.
inline void expect_each_once(const std::vector<SseEvent>& events,
                             const std::set<std::string>& stored, const std::string& prefix) {
  std::map<std::string, int> seen;
  std::pair<long long, unsigned long long> previous{-1, 0};
  for (const auto& e : events) {
    const json data = json::parse(e.data);
    ++seen[data["topic"].get<std::string>() + ":" + data["event_id"].get<std::string>()];
    const auto dash = e.id.find('-');
    const std::pair<long long, unsigned long long> at{std::stoll(e.id.substr(0, dash)),
                                                      std::stoull(e.id.substr(dash + 1))};
    EXPECT_LT(previous, at) << "out of cursor order at " << e.id;
    previous = at;
  }
  std::size_t missing = 0;
  std::size_t expected = 0;
  for (const auto& key : stored) {
    if (key.rfind(prefix, 0) != 0) continue;
    ++expected;
    if (seen.count(key) == 0) ++missing;
  }
  std::size_t repeated = 0;
  for (const auto& [key, count] : seen) repeated += count > 1 ? 1 : 0;
  EXPECT_EQ(missing, 0U) << "of " << expected;
  EXPECT_EQ(repeated, 0U);
  EXPECT_EQ(seen.size(), expected) << "events not stored were delivered";
}

inline void under_load(LoadDriver& driver,
                       const std::function<void(const std::atomic<bool>&)>& faults) {
  std::atomic<bool> done{false};
  std::thread chaos([&] { faults(done); });
  driver.run(20ms, 60s);
  done = true;
  chaos.join();
}

// Sleeps up to `d`, or less once the load is done.
inline void pause(const std::atomic<bool>& done, std::chrono::milliseconds d) {
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

}  // namespace testsupport
