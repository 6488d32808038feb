// Chaos, storage and configuration: full disks (tmpfs), a connection cut
// mid-COMMIT, a consumer and a stream deleted and created again, restarts
// with other settings, a cluster losing nodes. See chaos_stack.hpp for what
// every case checks.
#include "chaos_stack.hpp"

namespace testsupport {
namespace {

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
    disk.fill(std::size_t{64} * 1024);
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
  EXPECT_EQ(broker.max_bytes(), pipeline::nats::StreamSettings{}.max_bytes)
      << "a restart changed the running stream";
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
