// Chaos, processes: kill -9 of ingest, processors, nats-server and
// PostgreSQL under load, crashes at named points, a worker paused past
// AckWait, SIGTERM. See chaos_stack.hpp for what every case checks.
#include "chaos_stack.hpp"

namespace testsupport {
namespace {

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

// Subscribers read while processors are killed: each gets every stored event
// once, in cursor order, including one that drops and resumes with its
// Last-Event-ID halfway through.
TEST_F(Chaos, SubscribersMissNothingWhileProcessorsAreKilled) {
  start_single();
  const std::uint16_t port = stack_->ingest_port();
  SseClient all(port, "/subscribe");
  SseClient some(port, "/subscribe?topic=chaos.1");
  auto resumer = std::make_unique<SseClient>(port, "/subscribe");
  for (const SseClient* client : {&all, &some, resumer.get()}) {
    ASSERT_TRUE(wait_until([&] { return !client->raw().empty(); }, 20s)) << "no stream";
  }
  std::vector<SseEvent> resumed_part;
  LoadDriver driver(port, kSends, 21);
  under_load(driver, [&](const std::atomic<bool>& done) {
    for (int i = 0; i < 6; ++i) {
      pause(done, 400ms);
      const std::size_t victim = static_cast<std::size_t>(i % 2);
      stack_->processor(victim).kill9();
      stack_->start_processor(victim);
      if (i == 2) {  // the third subscriber drops out and comes back
        resumer->stop();
        resumed_part = resumer->events();
        const std::string last = resumed_part.empty() ? "" : resumed_part.back().id;
        std::map<std::string, std::string> headers;
        if (!last.empty()) headers["Last-Event-ID"] = last;
        resumer = std::make_unique<SseClient>(port, "/subscribe", headers);
      }
    }
  });
  stack_->verify("kill -9 processors x6 with subscribers", {&driver});
  const auto stored = stack_->stored_keys();
  std::size_t stored_1 = 0;
  for (const auto& key : stored) stored_1 += key.rfind("chaos.1:", 0) == 0 ? 1 : 0;
  ASSERT_TRUE(all.wait_for(stored.size(), 60s)) << all.events().size() << " of " << stored.size();
  ASSERT_TRUE(some.wait_for(stored_1, 60s));
  ASSERT_TRUE(resumer->wait_for(stored.size() - resumed_part.size(), 60s));
  std::vector<SseEvent> joined = resumed_part;
  for (const auto& e : resumer->events()) joined.push_back(e);
  expect_each_once(all.events(), stored, "");
  expect_each_once(some.events(), stored, "chaos.1:");
  expect_each_once(joined, stored, "");
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

}  // namespace
}  // namespace testsupport
