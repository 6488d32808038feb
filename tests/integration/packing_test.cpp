// Sealed partitions packed (migrations/0009, processor/src/packing.hpp)
// against a real PostgreSQL: a packed partition keeps its rows, its indexes
// and its pages' answers and takes less, with inserts and queries going on;
// a rebuild cut short (its connection terminated) leaves invalid copies that
// the next pass drops before it packs again; a failed rebuild is recorded
// and not tried again; a partition over EVENTS_PACK_MAX_BYTES, or whose
// rebuild could outlast the partitions made ahead, is left.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

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

  std::set<std::string> invalid_indexes() {
    std::set<std::string> out;
    pqxx::nontransaction tx(*conn_);
    for (const auto& row : tx.exec("SELECT indexrelid::regclass::text FROM pg_index "
                                   "WHERE indrelid = 'events_legacy'::regclass AND NOT indisvalid"))
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

  std::string pack_state() {
    pqxx::nontransaction tx(*conn_);
    const auto row = tx.exec1(
        "SELECT coalesce(pack_error, CASE WHEN packed_at IS NULL THEN 'waiting' "
        "ELSE 'packed' END) FROM sealed_partitions WHERE partition = 'events_legacy'");
    return row[0].as<std::string>();
  }

  std::string db_;
  std::unique_ptr<pqxx::connection> conn_;
  processor::PartitionSettings settings_;
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
                  "AND state = 'active'")[0]
                .as<int>() > 0;
        ++rounds;
        if (rebuilding) ++rounds_during_rebuild;
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
  });
  const processor::RetentionPass pass = processor::run_retention(*conn_, settings_);
  done = true;
  traffic.join();

  EXPECT_EQ(failure, "");
  EXPECT_GT(rounds_during_rebuild.load(), 0) << rounds.load() << " rounds, none during a rebuild";
  ASSERT_TRUE(pass.packed.has_value());
  EXPECT_EQ(pass.packed->name, "events_legacy");
  EXPECT_EQ(pass.packed->error, "");
  EXPECT_LT(pass.packed->bytes_after, pass.packed->bytes_before);
  EXPECT_EQ(pack_state(), "packed");
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
  EXPECT_FALSE(processor::run_retention(*conn_, settings_).packed.has_value());
}

TEST_F(Packing, ARebuildCutShortIsDroppedAndTheNextPassPacks) {
  fill(200'000);
  const std::set<std::string> before = btrees();
  auto victim = connect();
  const int pid = victim->backendpid();
  std::thread cut_pass([&] {
    try {
      processor::run_retention(*victim, settings_);
    } catch (const std::exception&) {  // NOLINT(bugprone-empty-catch): its connection is cut
    }
  });
  // Its connection terminated once copies of the indexes are being built.
  bool cut = false;
  for (const auto deadline = std::chrono::steady_clock::now() + 60s;
       !cut && std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(2ms)) {
    if (scalar("SELECT count(*) FROM pg_class WHERE relname LIKE 'events_legacy%ccnew%'") > 0) {
      cut = scalar("SELECT pg_terminate_backend(" + std::to_string(pid) + ")::int") == 1;
    }
  }
  cut_pass.join();
  ASSERT_TRUE(cut) << "no rebuild was seen, or its session could not be terminated";
  const std::set<std::string> left = invalid_indexes();
  ASSERT_FALSE(left.empty()) << "the rebuild ended before its connection was cut";
  EXPECT_EQ(pack_state(), "waiting");

  const processor::RetentionPass again = processor::run_retention(*conn_, settings_);
  EXPECT_EQ(std::set<std::string>(again.cut_rebuilds.begin(), again.cut_rebuilds.end()), left);
  ASSERT_TRUE(again.packed.has_value());
  EXPECT_EQ(again.packed->error, "");
  EXPECT_EQ(pack_state(), "packed");
  EXPECT_EQ(invalid_indexes(), std::set<std::string>{});
  EXPECT_EQ(btrees().size(), before.size());
  EXPECT_EQ(scalar("SELECT count(*) FROM events_legacy"), 200'000);
}

TEST_F(Packing, AFailedRebuildIsRecordedAndNotTriedAgain) {
  fill(1'000);
  settings_.pack_max_bytes = 1;  // over EVENTS_PACK_MAX_BYTES: left as it is
  EXPECT_FALSE(processor::run_retention(*conn_, settings_).packed.has_value());
  EXPECT_EQ(pack_state(), "waiting");

  settings_.pack_max_bytes = processor::PartitionSettings{}.pack_max_bytes;
  auto holder = connect();
  pqxx::work hold(*holder);
  hold.exec("LOCK TABLE events_legacy IN SHARE UPDATE EXCLUSIVE MODE");
  {
    pqxx::nontransaction tx(*conn_);
    tx.exec("SET lock_timeout = '200ms'");
  }
  const processor::RetentionPass pass = processor::run_retention(*conn_, settings_);
  hold.abort();
  ASSERT_TRUE(pass.packed.has_value());
  EXPECT_NE(pass.packed->error.find("lock timeout"), std::string::npos) << pass.packed->error;
  EXPECT_EQ(pack_state(), pass.packed->error);
  EXPECT_EQ(invalid_indexes(), std::set<std::string>{});
  {
    pqxx::nontransaction tx(*conn_);
    tx.exec("SET lock_timeout = 0");
  }
  EXPECT_FALSE(processor::run_retention(*conn_, settings_).packed.has_value());
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
  partitions_ahead(1s);
  EXPECT_FALSE(processor::run_retention(*conn_, settings_).packed.has_value());
  EXPECT_EQ(pack_state(), "waiting");
  // Thirty minutes ahead, it is packed.
  partitions_ahead(10min);
  const processor::RetentionPass pass = processor::run_retention(*conn_, settings_);
  ASSERT_TRUE(pass.packed.has_value());
  EXPECT_EQ(pass.packed->error, "");
  EXPECT_EQ(pack_state(), "packed");
}

}  // namespace
}  // namespace testsupport
