// Chaos, retention (issue 20): processors killed (-9) while they make a
// partition and between the DETACH and the DROP of an expired one, and
// PostgreSQL killed while a DETACH ... CONCURRENTLY waits. The next pass
// finishes what was cut; no event is lost or stored twice. See
// chaos_stack.hpp for what every verify() checks.
#include "chaos_stack.hpp"

namespace testsupport {
namespace {

// Partitions of a second, checked five times a second; no retention by age
// unless a case says (the default, 30 days, would be too many partitions).
std::vector<std::string> partition_settings() {
  return {"EVENTS_PARTITION_INTERVAL=1s", "EVENTS_RETENTION_CHECK_INTERVAL=200ms",
          "EVENTS_RETENTION=0"};
}

std::vector<std::string> with(std::vector<std::string> vars, const std::vector<std::string>& more) {
  vars.insert(vars.end(), more.begin(), more.end());
  return vars;
}

class ChaosRetention : public Chaos {
 protected:
  // nats-server, PostgreSQL with the schema, ingest; no processor yet.
  void start_without_processors() {
    nats_ = std::make_unique<NatsServer>();
    stack_ = std::make_unique<ChaosStack>(std::vector<std::string>{nats_->url()});
    stack_->start_ingest();
  }

  std::int64_t scalar(const std::string& sql) {
    pqxx::connection conn(stack_->postgres().url("chaos"));
    pqxx::nontransaction tx(conn);
    return tx.exec1(sql)[0].as<std::int64_t>();
  }

  // Tables named like partitions that are no partition of events (a pass
  // cut between DETACH and DROP leaves one).
  std::int64_t orphans() {
    return scalar(
        "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND NOT relispartition AND "
        "(relname LIKE 'events\\_p%' OR relname = 'events_legacy')");
  }
  std::int64_t legacy_partitions() {
    return scalar(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass AND c.relname = 'events_legacy'");
  }
};

// Killed inside the transaction that makes a partition: nothing of it
// remains, the next pass makes it, and the load is stored exactly once.
TEST_F(ChaosRetention, KilledWhileMakingAPartition) {
  start_without_processors();
  // Processor 0 dies at its first partition (at start), processor 1 at its
  // sixth (under load: it makes four or five at start, one a second after);
  // each is started again without the fault.
  stack_->start_processor(
      0, with(partition_settings(), {"FAULT_POINT=processor.partition_before_attach"}));
  ASSERT_TRUE(wait_until([&] { return !stack_->processor(0).running(); }, 30s))
      << "the processor never reached the crash point";
  EXPECT_EQ(orphans(), 0);
  // Processor 1 alone, so that no other processor makes its partitions
  // first; processor 0 comes back once it died.
  stack_->start_processor(
      1, with(partition_settings(),
              {"FAULT_POINT=processor.partition_before_attach", "FAULT_POINT_SKIP=5"}));
  LoadDriver driver(stack_->ingest_port(), kSends, 31);
  bool crashed_under_load = false;
  under_load(driver, [&](const std::atomic<bool>& done) {
    while (!done && stack_->processor(1).running()) pause(done, 50ms);
    crashed_under_load = !stack_->processor(1).running();
    stack_->start_processor(0, partition_settings());
    stack_->start_processor(1, partition_settings());
  });
  EXPECT_TRUE(crashed_under_load) << "the second crash did not happen during the load";
  EXPECT_EQ(orphans(), 0);
  stack_->verify("kill -9 while making a partition x2", {&driver});
}

// Killed between DETACH and DROP of an expired partition: the detached
// table is dropped by the next pass, nothing else.
TEST_F(ChaosRetention, KilledBetweenDetachAndDrop) {
  start_without_processors();
  // The legacy partition (empty; it ends when the schema was made) expires
  // 2 s after; the processor dies once it is detached.
  stack_->start_processor(
      0, with(partition_settings(), {"EVENTS_RETENTION=2s",
                                     "FAULT_POINT=processor.retention_after_detach_"
                                     "before_drop"}));
  ASSERT_TRUE(wait_until([&] { return !stack_->processor(0).running(); }, 30s))
      << "the processor never reached the crash point";
  EXPECT_EQ(orphans(), 1) << "the crash left no detached table";
  EXPECT_EQ(legacy_partitions(), 0);
  // Started again (retention by age off, as after a change of settings):
  // the orphan goes, and the load is stored exactly once.
  stack_->start_processor(0, partition_settings());
  stack_->start_processor(1, partition_settings());
  EXPECT_TRUE(wait_until([&] { return orphans() == 0; }, 20s)) << "the orphan stayed";
  LoadDriver driver(stack_->ingest_port(), kSends, 32);
  under_load(driver, [&](const std::atomic<bool>& done) {
    pause(done, 500ms);
    stack_->processor(1).kill9();
    stack_->start_processor(1, partition_settings());
  });
  stack_->verify("kill -9 between detach and drop", {&driver});
}

// PostgreSQL killed while DETACH ... CONCURRENTLY waits for a reader: the
// partition is left "detach pending"; after the restart the next pass
// finishes the detach (FINALIZE) and drops it.
TEST_F(ChaosRetention, PostgresKilledDuringADetach) {
  start_without_processors();
  // A reader whose snapshot the DETACH must wait for.
  auto reader = std::make_unique<pqxx::connection>(stack_->postgres().url("chaos"));
  auto snapshot = std::make_unique<pqxx::work>(*reader);
  snapshot->exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
  snapshot->exec("SELECT count(*) FROM events");
  stack_->start_processor(0, with(partition_settings(), {"EVENTS_RETENTION=2s"}));
  const auto detach_waits = [&] {
    return scalar(
               "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%DETACH PARTITION%' "
               "AND state = 'active'") > 0;
  };
  ASSERT_TRUE(wait_until(detach_waits, 30s)) << "no DETACH waited: the fault was not carried out";
  stack_->postgres().kill9();
  snapshot.reset();
  reader.reset();
  stack_->postgres().start();
  EXPECT_TRUE(wait_until([&] { return legacy_partitions() == 0 && orphans() == 0; }, 30s))
      << "the detach was not finished after the restart";
  // The stack works on: a load, processors restarted with retention by age
  // off, stored exactly once.
  stack_->processor(0).stop(SIGTERM);
  stack_->start_processor(0, partition_settings());
  stack_->start_processor(1, partition_settings());
  LoadDriver driver(stack_->ingest_port(), kSends, 33);
  under_load(driver, [&](const std::atomic<bool>&) {});
  stack_->verify("kill -9 postgres during a detach", {&driver});
}

}  // namespace
}  // namespace testsupport
