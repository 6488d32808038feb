// Sealed partitions packed (migrations/0009, processor/src/packing.hpp)
// against a real PostgreSQL: a packed partition keeps its rows, its indexes
// and its pages' answers and takes less, with inserts and queries going on;
// a rebuild cut short (its session terminated) leaves invalid copies that
// the next pass drops before it packs again; one cancelled at shutdown
// drops its copies and records no failure; a failed rebuild is recorded and
// tried three times at most; a partition over EVENTS_PACK_MAX_BYTES, or
// whose rebuild could outlast the partitions made ahead, is left.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <functional>
#include <set>
#include <thread>

#include "packing.hpp"
#include "pipeline/database.hpp"
#include "pipeline_fixture.hpp"
#include "processor/partitions.hpp"

namespace testsupport {
namespace {

using namespace std::chrono_literals;

class Packing : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = shared_postgres().create_database();
    conn_ = connect();
    pipeline::db::apply_migrations(*conn_);
    settings_.seal_margin = 0ms;  // events_legacy ends when the schema was made
    processor::ensure_partitions(*conn_, settings_);
  }

  std::unique_ptr<pqxx::connection> connect() const {
    return std::make_unique<pqxx::connection>(shared_postgres().url(db_));
  }

  // `count` rows in events_legacy, arrived a day ago: random keys and times
  // in no order, as events come.
  void fill(int count) {
    pqxx::nontransaction tx(*conn_);
    tx.exec(
        "INSERT INTO events (topic, event_id, ts, source, payload, stream_seq, stored_at) "
        "SELECT 'topic-' || (i % 16), md5(random()::text), now() - random() * interval '1 hour', "
        "'source-' || (i % 40), jsonb_build_object('n', i), i + 1, now() - interval '1 day' "
        "FROM generate_series(1, " +
        std::to_string(count) + ") i");
  }

  std::int64_t scalar(const std::string& sql) {
    pqxx::nontransaction tx(*conn_);
    return tx.exec1(sql)[0].as<std::int64_t>();
  }

  // events_legacy's b-trees, each with its options.
  std::set<std::string> btrees() {
    std::set<std::string> out;
    pqxx::nontransaction tx(*conn_);
    for (const auto& row :
         tx.exec("SELECT c.relname || ' ' || coalesce(array_to_string(c.reloptions, ','), '') "
                 "FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
                 "JOIN pg_am a ON a.oid = c.relam "
                 "WHERE x.indrelid = 'events_legacy'::regclass AND a.amname = 'btree'"))
      out.insert(row[0].as<std::string>());
    return out;
  }

  // Those of events_legacy and of its TOAST table.
  std::set<std::string> invalid_indexes() {
    std::set<std::string> out;
    pqxx::nontransaction tx(*conn_);
    for (const auto& row : tx.exec(
             "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid AND indrelid "
             "IN ('events_legacy'::regclass, (SELECT reltoastrelid FROM pg_class "
             "WHERE oid = 'events_legacy'::regclass))"))
      out.insert(row[0].as<std::string>());
    return out;
  }

  // A page of GET /events's shape, read on the (topic, ts) index.
  std::string newest(const std::string& topic) {
    std::string out;
    pqxx::nontransaction tx(*conn_);
    for (const auto& row : tx.exec_params("SELECT event_id FROM events WHERE topic = $1 "
                                          "ORDER BY ts DESC, stream_seq DESC, id DESC LIMIT 100",
                                          topic))
      out += row[0].as<std::string>() + ",";
    return out;
  }

  // "packed", the last failure or "waiting", then " after N" attempts.
  std::string pack_state() {
    pqxx::nontransaction tx(*conn_);
    const auto row = tx.exec1(
        "SELECT CASE WHEN packed_at IS NOT NULL THEN 'packed' ELSE coalesce(pack_error, "
        "'waiting') END || ' after ' || pack_attempts FROM sealed_partitions "
        "WHERE partition = 'events_legacy'");
    return row[0].as<std::string>();
  }

  // A retention pass (the first seals events_legacy), then a packing pass,
  // as the processor runs them.
  processor::PackPass pass_and_pack(pqxx::connection& conn, const std::atomic<bool>& interrupted) {
    processor::run_retention(conn, settings_);
    return processor::run_pack(conn, settings_, interrupted);
  }
  processor::PackPass pass_and_pack() { return pass_and_pack(*conn_, go_on_); }

  // Waits (at most 60 s) until a rebuild of events_legacy builds copies of
  // its indexes, then runs `cut`. False when none was seen.
  bool cut_while_rebuilding(const std::function<void()>& cut) {
    for (const auto deadline = std::chrono::steady_clock::now() + 60s;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(2ms)) {
      if (scalar("SELECT count(*) FROM pg_class WHERE relname LIKE 'events_legacy%ccnew%'") > 0) {
        cut();
        return true;
      }
    }
    return false;
  }

  std::string db_;
  std::unique_ptr<pqxx::connection> conn_;
  processor::PartitionSettings settings_;
  const std::atomic<bool> go_on_{false};
};

TEST_F(Packing, APackedPartitionKeepsItsRowsAndIndexesAndTakesLess) {
  fill(50'000);
  const std::set<std::string> before = btrees();
  const std::int64_t index_bytes = scalar("SELECT pg_indexes_size('events_legacy')");
  const std::string page = newest("topic-3");

  // Inserts into the partition being written and queries of the one being
  // packed, none allowed to wait half a second for a lock, through the pass.
  std::atomic<bool> done{false};
  std::atomic<int> rounds{0};
  std::atomic<int> rounds_during_rebuild{0};
  std::string failure;
  std::thread traffic([&] {
    try {
      auto conn = connect();
      pqxx::nontransaction tx(*conn);
      tx.exec("SET lock_timeout = '500ms'");
      for (int i = 0; !done.load(); ++i) {
        tx.exec("INSERT INTO events (topic, event_id, ts, source, stream_seq) VALUES ('live', " +
                tx.quote("live-" + std::to_string(i)) + ", now(), 'test', " +
                std::to_string(1'000'000 + i) + ")");
        tx.exec(
            "SELECT event_id FROM events_legacy WHERE topic = 'topic-5' ORDER BY ts DESC "
            "LIMIT 10");
        const bool rebuilding =
            tx.exec1(
                  "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'REINDEX%' "
                  "AND state = 'active' AND datname = current_database()")[0]
                .as<int>() > 0;
        ++rounds;
        if (rebuilding) ++rounds_during_rebuild;
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
  });
  const processor::PackPass pass = pass_and_pack();
  done = true;
  traffic.join();

  EXPECT_EQ(failure, "");
  EXPECT_GT(rounds_during_rebuild.load(), 0) << rounds.load() << " rounds, none during a rebuild";
  ASSERT_TRUE(pass.packed.has_value());
  EXPECT_EQ(pass.packed->name, "events_legacy");
  EXPECT_EQ(pass.packed->error, "");
  EXPECT_LT(pass.packed->bytes_after, pass.packed->bytes_before);
  EXPECT_EQ(pass.packed->attempt, 1);
  EXPECT_EQ(pack_state(), "packed after 1");
  EXPECT_LT(scalar("SELECT pg_indexes_size('events_legacy')"), index_bytes * 9 / 10);
  // The same indexes by name, each now filled full; nothing left over.
  std::set<std::string> packed;
  for (const std::string& index : before) {
    packed.insert(index.substr(0, index.find(' ')) + " fillfactor=100");
  }
  EXPECT_EQ(btrees(), packed);
  EXPECT_EQ(invalid_indexes(), std::set<std::string>{});
  EXPECT_EQ(scalar("SELECT count(*) FROM events_legacy"), 50'000);
  EXPECT_EQ(newest("topic-3"), page);
  // Once.
  EXPECT_FALSE(pass_and_pack().packed.has_value());
}

TEST_F(Packing, ARebuildCutShortIsDroppedAndTheNextPassPacks) {
  fill(200'000);
  const std::set<std::string> before = btrees();
  auto victim = connect();
  const int pid = victim->backendpid();
  std::thread cut_pass([&] {
    try {
      pass_and_pack(*victim, go_on_);
    } catch (const std::exception&) {  // NOLINT(bugprone-empty-catch): its session is terminated
    }
  });
  bool terminated = false;
  const bool seen = cut_while_rebuilding([&] {
    terminated = scalar("SELECT pg_terminate_backend(" + std::to_string(pid) + ")::int") == 1;
  });
  cut_pass.join();
  ASSERT_TRUE(seen && terminated) << "no rebuild was seen, or its session was not terminated";
  const std::set<std::string> left = invalid_indexes();
  ASSERT_FALSE(left.empty()) << "the rebuild ended before its session was terminated";
  EXPECT_EQ(pack_state(), "waiting after 1");  // counted before it started

  const processor::PackPass again = pass_and_pack();
  EXPECT_EQ(std::set<std::string>(again.cut_rebuilds.begin(), again.cut_rebuilds.end()), left);
  ASSERT_TRUE(again.packed.has_value());
  EXPECT_EQ(again.packed->error, "");
  EXPECT_EQ(pack_state(), "packed after 2");
  EXPECT_EQ(invalid_indexes(), std::set<std::string>{});
  EXPECT_EQ(btrees().size(), before.size());
  EXPECT_EQ(scalar("SELECT count(*) FROM events_legacy"), 200'000);
}

TEST_F(Packing, ARebuildCancelledAtShutdownDropsItsCopiesAndIsNoFailure) {
  fill(200'000);
  auto processor = connect();
  std::atomic<bool> interrupted{false};
  std::string thrown;
  std::thread packing([&] {
    try {
      pass_and_pack(*processor, interrupted);
    } catch (const std::exception& e) {
      thrown = e.what();
    }
  });
  // What Retention::interrupt() does: the flag, then PQcancel from another
  // thread.
  const bool seen = cut_while_rebuilding([&] {
    interrupted = true;
    processor->cancel_query();
  });
  packing.join();
  ASSERT_TRUE(seen) << "no rebuild was seen";
  EXPECT_NE(thrown.find("canceling statement due to user request"), std::string::npos) << thrown;
  EXPECT_EQ(invalid_indexes(), std::set<std::string>{});
  EXPECT_EQ(pack_state(), "waiting after 1");
  const processor::PackPass again = pass_and_pack();
  ASSERT_TRUE(again.packed.has_value());
  EXPECT_TRUE(again.cut_rebuilds.empty());
  EXPECT_EQ(pack_state(), "packed after 2");
}

TEST_F(Packing, AFailedRebuildIsRecordedAndTriedThreeTimesAtMost) {
  fill(1'000);
  settings_.pack_max_bytes = 1;  // over EVENTS_PACK_MAX_BYTES: left as it is
  EXPECT_FALSE(pass_and_pack().packed.has_value());
  EXPECT_EQ(pack_state(), "waiting after 0");

  settings_.pack_max_bytes = processor::PartitionSettings{}.pack_max_bytes;
  auto holder = connect();
  pqxx::work hold(*holder);
  hold.exec("LOCK TABLE events_legacy IN SHARE UPDATE EXCLUSIVE MODE");
  {
    pqxx::nontransaction tx(*conn_);
    tx.exec("SET lock_timeout = '200ms'");
  }
  for (int attempt = 1; attempt <= processor::kPackAttempts; ++attempt) {
    const processor::PackPass pass = pass_and_pack();
    ASSERT_TRUE(pass.packed.has_value());
    EXPECT_EQ(pass.packed->attempt, attempt);
    EXPECT_NE(pass.packed->error.find("lock timeout"), std::string::npos) << pass.packed->error;
    EXPECT_EQ(pack_state(), pass.packed->error + " after " + std::to_string(attempt));
  }
  hold.abort();
  {
    pqxx::nontransaction tx(*conn_);
    tx.exec("SET lock_timeout = 0");
  }
  EXPECT_FALSE(pass_and_pack().packed.has_value());  // out of attempts
  EXPECT_EQ(scalar("SELECT count(*) FROM events_legacy"), 1'000);
}

TEST_F(Packing, APartitionIsLeftWhileItsRebuildCouldOutlastThePartitionsAhead) {
  fill(150'000);
  // Only the partitions ahead are dropped, then made again with `interval`.
  const auto partitions_ahead = [&](std::chrono::milliseconds interval) {
    const auto partitions = processor::list_partitions(*conn_);
    {
      pqxx::nontransaction tx(*conn_);
      for (const auto& p : partitions)
        if (p.name != "events_legacy") tx.exec("DROP TABLE " + tx.quote_name(p.name));
    }
    settings_.interval = interval;
    processor::ensure_partitions(*conn_, settings_);
  };
  // Partitions of a second, three ahead: a rebuild of about 60 MB at a slow
  // machine's pace could outlast them, and no processor makes more while
  // it holds the partition lock.
  // (A partition of a second that ended meanwhile is sealed and, empty,
  // small enough to be packed, newest first: passes until none is left.)
  partitions_ahead(1s);
  for (int i = 0; i < 20; ++i) {
    const processor::PackPass pass = pass_and_pack();
    if (!pass.packed) break;
    ASSERT_NE(pass.packed->name, "events_legacy") << "packed with 1-second partitions ahead";
  }
  EXPECT_EQ(pack_state(), "waiting after 0");
  // Thirty minutes ahead, it is packed.
  partitions_ahead(10min);
  const processor::PackPass pass = pass_and_pack();
  ASSERT_TRUE(pass.packed.has_value());
  EXPECT_EQ(pass.packed->error, "");
  EXPECT_EQ(pack_state(), "packed after 1");
}

}  // namespace
}  // namespace testsupport
