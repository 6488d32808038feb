// BatchWriter and the failure classification against a real PostgreSQL:
// each message counted once whatever the redeliveries, the first write of a
// key wins by stream position (in one batch, across batches, across stream
// incarnations), pruning forgets only what the stream can no longer
// deliver, and libpqxx's real exceptions classify as the processor expects.
#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <thread>

#include "pipeline/database.hpp"
#include "pipeline/event.hpp"
#include "pipeline_fixture.hpp"
#include "processor/batch_writer.hpp"
#include "processor/partitions.hpp"

namespace testsupport {
namespace {

using processor::IncomingMessage;
using processor::StoreOutcome;

constexpr std::int64_t kIncarnation = 1'700'000'000'000'000'000;

class BatchWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = shared_postgres().create_database();
    auto conn = pipeline::db::connect(shared_postgres().url(db_), std::chrono::seconds(10));
    pipeline::db::apply_migrations(*conn);
    processor::ensure_partitions(*conn, processor::PartitionSettings{});  // the processor's part
    writer_ = std::make_unique<processor::BatchWriter>(shared_postgres().url(db_));
  }

  static IncomingMessage message(std::uint64_t seq, const std::string& id,
                                 const std::string& payload = "{}",
                                 std::int64_t created = kIncarnation) {
    pipeline::Event e;
    e.topic = "bw";
    e.event_id = id;
    e.timestamp = "2026-11-24T10:00:00.000000Z";
    e.source = "test";
    e.payload_json = payload;
    IncomingMessage m;
    m.position = {created, seq};
    m.subject = "events.bw";
    m.data = pipeline::encode_event(e);
    return m;
  }

  static IncomingMessage marker(std::uint64_t seq, const std::string& body,
                                std::int64_t created = kIncarnation) {
    IncomingMessage m;
    m.position = {created, seq};
    m.subject = "events.bw";
    m.data = body;
    m.broker_duplicate_marker = true;
    return m;
  }

  std::int64_t counter(const std::string& name) {
    pqxx::connection conn(shared_postgres().url(db_));
    return pipeline::db::read_counter(conn, name);
  }

  std::string stored_payload(const std::string& id) {
    pqxx::connection conn(shared_postgres().url(db_));
    pqxx::read_transaction tx(conn);
    return tx
        .exec_params1("SELECT payload::text FROM events WHERE topic = 'bw' AND event_id = $1",
                      id)[0]
        .as<std::string>();
  }

  std::int64_t scalar(const std::string& sql) {
    pqxx::connection conn(shared_postgres().url(db_));
    pqxx::nontransaction tx(conn);
    return tx.exec1(sql)[0].as<std::int64_t>();
  }

  std::string db_;
  std::unique_ptr<processor::BatchWriter> writer_;
};

// The same message twice in one batch (redelivered to the worker that still
// held it) is stored and counted once; a duplicate from another message is
// counted as a duplicate, once, even when redelivered.
TEST_F(BatchWriterTest, CountsEachMessageOnceWhateverTheRedeliveries) {
  const IncomingMessage first = message(7, "1");
  const IncomingMessage other = message(9, "1");  // same key, new message

  auto result = writer_->write({first, first});
  EXPECT_EQ(result.stored, 1u);
  EXPECT_EQ(result.redelivered, 1u);
  result = writer_->write({first, other});  // both again: a redelivery and a duplicate
  EXPECT_EQ(result.stored, 0u);
  EXPECT_EQ(result.redelivered, 1u);
  EXPECT_EQ(result.duplicates, 1u);
  result = writer_->write({other});  // the duplicate redelivered
  EXPECT_EQ(result.duplicates, 0u);
  EXPECT_EQ(result.redelivered, 1u);

  // Count markers of broker duplicates: each counted once, however often it
  // is delivered; a marker whose body is no count goes to dead letters.
  result = writer_->write({marker(11, "3"), marker(11, "3"), marker(12, "bw:1")});
  EXPECT_EQ(result.broker_duplicates, 3u);
  EXPECT_EQ(result.markers, 1u);
  EXPECT_EQ(result.redelivered, 1u);
  EXPECT_EQ(result.dead_lettered, 1u);
  EXPECT_EQ(result.stored, 0u);
  EXPECT_EQ(result.outcomes[0], StoreOutcome::kBrokerDuplicate);
  result = writer_->write({marker(11, "3")});  // redelivered after its commit
  EXPECT_EQ(result.broker_duplicates, 0u);
  EXPECT_EQ(result.redelivered, 1u);

  EXPECT_EQ(counter("unique_processed"), 1);
  EXPECT_EQ(counter("duplicate_database"), 1);
  EXPECT_EQ(counter("duplicate_broker"), 3);
  EXPECT_EQ(counter("dead_lettered"), 1);
}

// Two copies of each key in one batch, the later one (higher sequence) first
// in the batch: the copy the broker accepted first is stored, for every key.
// (std::sort on the key alone kept whichever copy it happened to put first.)
TEST_F(BatchWriterTest, FirstWriteWinsInsideOneBatch) {
  std::vector<IncomingMessage> batch;
  batch.reserve(400);
  for (int k = 0; k < 200; ++k) {
    batch.push_back(
        message(1000 + static_cast<std::uint64_t>(k), "k" + std::to_string(k), R"({"copy":"B"})"));
  }
  for (int k = 0; k < 200; ++k) {
    batch.push_back(
        message(static_cast<std::uint64_t>(k) + 1, "k" + std::to_string(k), R"({"copy":"A"})"));
  }
  const auto result = writer_->write(batch);
  EXPECT_EQ(result.stored, 200u);
  EXPECT_EQ(result.duplicates, 200u);
  EXPECT_EQ(scalar("SELECT count(*) FROM events WHERE payload->>'copy' = 'A'"), 200);
  EXPECT_EQ(scalar("SELECT count(*) FROM events WHERE stream_seq > 200"), 0);
}

// The later copy commits first (its batch got there first: the earlier one
// was retried after a failure, or another worker was slower). The earlier
// copy, when it commits, takes the row's place, and the later one is then
// counted as the duplicate; redeliveries of either change nothing.
TEST_F(BatchWriterTest, FirstWriteWinsAcrossBatchesWhateverTheCommitOrder) {
  const IncomingMessage later = message(50, "x", R"({"copy":"B"})");
  const IncomingMessage earlier = message(10, "x", R"({"copy":"A"})");
  auto result = writer_->write({later});
  EXPECT_EQ(result.stored, 1u);
  EXPECT_EQ(stored_payload("x"), R"({"copy": "B"})");

  result = writer_->write({earlier});
  EXPECT_EQ(result.outcomes[0], StoreOutcome::kReplaced);
  EXPECT_EQ(result.stored, 0u);
  EXPECT_EQ(result.duplicates, 1u);  // the later copy, displaced
  EXPECT_EQ(stored_payload("x"), R"({"copy": "A"})");

  result = writer_->write({later, earlier});  // both redelivered
  EXPECT_EQ(result.redelivered, 2u);
  EXPECT_EQ(result.duplicates, 0u);
  EXPECT_EQ(stored_payload("x"), R"({"copy": "A"})");

  // A third copy, later than both: a plain duplicate.
  result = writer_->write({message(70, "x", R"({"copy":"C"})")});
  EXPECT_EQ(result.duplicates, 1u);
  EXPECT_EQ(stored_payload("x"), R"({"copy": "A"})");
  EXPECT_EQ(counter("unique_processed"), 1);
  EXPECT_EQ(counter("duplicate_database"), 2);
}

// A stream deleted and created again numbers its messages from 1 again: the
// same sequence in a new incarnation is a new message, never taken for a
// redelivery, and never displaces a row of the older incarnation.
TEST_F(BatchWriterTest, ANewStreamIncarnationIsNeverTakenForTheOldOne) {
  const std::int64_t next = kIncarnation + 1'000'000'000;
  auto result = writer_->write({message(1, "a"), marker(2, "4")});
  EXPECT_EQ(result.stored, 1u);
  // Sequence 1 again, another event: stored. Sequence 2 again, a marker:
  // counted, not taken for the old one's redelivery.
  result = writer_->write({message(1, "b", "{}", next), marker(2, "4", next)});
  EXPECT_EQ(result.stored, 1u);
  EXPECT_EQ(result.broker_duplicates, 4u);
  // Key "a" again at sequence 1 of the new stream: a duplicate, not a
  // redelivery, and it does not displace the old incarnation's first write.
  result = writer_->write({message(1, "a", R"({"v":2})", next)});
  EXPECT_EQ(result.outcomes[0], StoreOutcome::kDuplicate);
  EXPECT_EQ(stored_payload("a"), "{}");
  // A poison message at an old sequence is kept, once per incarnation.
  IncomingMessage poison = message(2, "p", "{}", next);
  poison.data = "not json";
  result = writer_->write({poison});
  EXPECT_EQ(result.dead_lettered, 1u);
  EXPECT_EQ(counter("unique_processed"), 2);
  EXPECT_EQ(counter("duplicate_broker"), 8);
  EXPECT_EQ(counter("duplicate_database"), 1);
  EXPECT_EQ(counter("dead_lettered"), 1);
}

// Folding topic_counters into topic_totals never waits for a batch that
// holds a counter row (it skips it until the next time): a compaction that
// waited deadlocked with batches adding to several topics (make bench).
TEST_F(BatchWriterTest, CompactionSkipsTheCountersABatchHolds) {
  writer_->write({message(1, "a"), message(2, "b")});
  pqxx::connection batch(shared_postgres().url(db_));
  pqxx::work held(batch);
  held.exec("UPDATE topic_counters SET value = value + 1");  // a batch not yet committed
  writer_->prune(kIncarnation, 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM topic_totals"), 0) << "a held row was moved";
  held.commit();
  const std::int64_t counted = scalar("SELECT sum(value) FROM topic_counters");
  EXPECT_GT(counted, 2);
  writer_->prune(kIncarnation, 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM topic_counters"), 0);
  EXPECT_EQ(scalar("SELECT COALESCE(sum(value), 0) FROM topic_totals WHERE topic = 'bw'"), counted);
}

// Duplicates and markers are remembered as long as the stream can deliver
// them again: only other incarnations and sequences below the stream's first
// one are forgotten.
TEST_F(BatchWriterTest, PruneForgetsOnlyWhatTheStreamNoLongerHolds) {
  writer_->write({message(1, "k")});
  writer_->write({message(5, "k"), message(8, "k"), marker(6, "2"), marker(9, "1")});
  writer_->write({message(3, "k", "{}", kIncarnation - 1)});
  EXPECT_EQ(scalar("SELECT count(*) FROM duplicate_deliveries"), 3);
  EXPECT_EQ(scalar("SELECT count(*) FROM duplicate_markers"), 2);
  EXPECT_EQ(writer_->prune(kIncarnation, 7), 3u);  // seq 5, seq 6, the old incarnation
  EXPECT_EQ(scalar("SELECT count(*) FROM duplicate_deliveries"), 1);
  EXPECT_EQ(scalar("SELECT count(*) FROM duplicate_markers"), 1);
  // What stays is still recognised when delivered again.
  const auto result = writer_->write({message(8, "k"), marker(9, "1")});
  EXPECT_EQ(result.redelivered, 2u);
}

// libpqxx's real exceptions, from a real server, for the SQLSTATEs the
// processor meets: each classified as the processor expects.
TEST_F(BatchWriterTest, RealServerErrorsClassifyAsExpected) {
  using pipeline::db::FailureKind;
  pqxx::connection conn(shared_postgres().url(db_));
  const auto raise = [&](const std::string& sqlstate) {
    try {
      pqxx::work tx(conn);
      tx.exec("DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '" + sqlstate + "'; END $$");
    } catch (const std::exception& e) {
      return pipeline::db::classify_failure(e);
    }
    ADD_FAILURE() << sqlstate << " raised nothing";
    return FailureKind::kUnavailable;
  };
  for (const char* state : {"53100", "53200", "57014", "55P03", "58030", "25006", "40001", "40P01",
                            "P0001", "42501", "42P01", "XX000", "53400"}) {
    EXPECT_EQ(raise(state), FailureKind::kRetryLater) << state;
  }
  for (const char* state : {"22P02", "22001", "23502", "23514", "54000"}) {
    EXPECT_EQ(raise(state), FailureKind::kNeverStorable) << state;
  }
  // A server that goes away: the connection is gone.
  {
    pqxx::connection victim(shared_postgres().url(db_));
    const auto pid = victim.backendpid();
    pqxx::nontransaction admin(conn);
    admin.exec("SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
    try {
      pqxx::work tx(victim);
      tx.exec("SELECT 1");
      ADD_FAILURE() << "a terminated backend answered";
    } catch (const std::exception& e) {
      EXPECT_EQ(pipeline::db::classify_failure(e), FailureKind::kUnavailable) << e.what();
    }
  }
  // A real invalid value in the events table: the message can never be stored.
  try {
    pqxx::work tx(conn);
    tx.exec(
        "INSERT INTO events (topic, event_id, ts, source, stream_seq) "
        "VALUES ('t', 'i', 'not a time', 's', 1)");
    ADD_FAILURE() << "an invalid timestamp was stored";
  } catch (const std::exception& e) {
    EXPECT_EQ(pipeline::db::classify_failure(e), FailureKind::kNeverStorable) << e.what();
  }
}

}  // namespace
}  // namespace testsupport

namespace testsupport {
namespace {

// Two copies of new keys in two transactions on either side of a partition
// bound (the first holds its rows uncommitted across the bound): the second
// must find the first's rows, not store the keys again in its own
// partition. The first is held open by a lock on the counters it writes
// last; the second's wait is seen in pg_stat_activity, not slept for.
TEST_F(BatchWriterTest, CopiesOnEitherSideOfAPartitionBoundStoreOnce) {
  using namespace std::chrono_literals;
  // A database of its own, partitioned by the second.
  const std::string db = shared_postgres().create_database();
  pqxx::connection admin(shared_postgres().url(db));
  pqxx::connection setup(shared_postgres().url(db));
  pipeline::db::apply_migrations(setup);
  processor::PartitionSettings settings;
  settings.interval = std::chrono::seconds(1);
  settings.ahead = 30;
  processor::ensure_partitions(setup, settings);
  std::vector<IncomingMessage> first;
  std::vector<IncomingMessage> second;
  for (std::uint64_t i = 0; i < 50; ++i) {
    first.push_back(message(i + 1, "race-" + std::to_string(i)));
    second.push_back(message(i + 101, "race-" + std::to_string(i)));
  }
  const auto clock = [&] {
    pqxx::nontransaction tx(setup);
    return tx.exec1("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")[0]
        .as<std::int64_t>();
  };
  const auto waiting = [&] {
    pqxx::nontransaction tx(setup);
    return tx
        .exec1(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type IN ('Lock', 'LWLock') AND state = 'active'")[0]
        .as<int>();
  };
  // 700 ms before the next bound at the latest.
  ASSERT_TRUE(wait_until([&] { return clock() % 1'000'000 < 300'000; }, 5s));
  const std::int64_t bound = clock() / 1'000'000 * 1'000'000 + 1'000'000;
  pqxx::work hold(admin);
  hold.exec("LOCK TABLE pipeline_counters IN EXCLUSIVE MODE");
  processor::BatchWriter writer_a(shared_postgres().url(db));
  processor::BatchWriter writer_b(shared_postgres().url(db));
  processor::BatchResult result_a;
  processor::BatchResult result_b;
  std::thread a([&] { result_a = writer_a.write(first); });
  ASSERT_TRUE(wait_until([&] { return waiting() >= 1; }, 5s)) << "the first never waited";
  ASSERT_LT(clock(), bound) << "the first transaction began after the bound: run again";
  ASSERT_TRUE(wait_until([&] { return clock() > bound + 50'000; }, 5s));
  std::thread b([&] { result_b = writer_b.write(second); });
  ASSERT_TRUE(wait_until([&] { return waiting() >= 2; }, 5s)) << "the second never waited";
  hold.commit();
  a.join();
  b.join();
  EXPECT_EQ(result_a.stored, 50U);
  EXPECT_EQ(result_b.duplicates, 50U);
  pqxx::nontransaction tx(setup);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM events WHERE topic = 'bw'")[0].as<int>(), 50);
}

}  // namespace
}  // namespace testsupport
