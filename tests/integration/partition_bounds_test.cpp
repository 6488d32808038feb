// The partitions' ends a BatchWriter holds to know when a transaction begins
// near one (processor/src/partition_bounds.hpp), against a real PostgreSQL:
// read once, then again whenever a partition comes, goes or is attached
// again with another bound, in one transaction or concurrently.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "partition_bounds.hpp"
#include "pipeline/database.hpp"
#include "pipeline/timestamp.hpp"
#include "pipeline_fixture.hpp"

namespace testsupport {
namespace {

class PartitionBoundsTest : public ::testing::Test {
 protected:
  // The partitions are the test's own: events_legacy (empty; it ends when
  // the migration ran) goes, events_pa, [start - 1000 s, start + 1000 s), comes.
  void SetUp() override {
    db_ = shared_postgres().create_database();
    conn_ = std::make_unique<pqxx::connection>(shared_postgres().url(db_));
    pipeline::db::apply_migrations(*conn_);
    processor::PartitionBounds::prepare(*conn_);
    pqxx::nontransaction tx(*conn_);
    start_ = tx.exec1("SELECT (extract(epoch FROM now()) * 1000000)::bigint")[0].as<std::int64_t>();
    tx.exec("ALTER TABLE events DETACH PARTITION events_legacy");
    tx.exec("CREATE TABLE events_pa PARTITION OF events " + range(-1000, 1000));
  }

  // FOR VALUES FROM (start + from s) TO (start + to s).
  std::string range(int from, int to) const {
    const auto at = [this](int seconds) {
      return "'" +
             pipeline::format_rfc3339(pipeline::UtcTimestamp{start_ + seconds * 1'000'000LL}) + "'";
    };
    return "FOR VALUES FROM (" + at(from) + ") TO (" + at(to) + ")";
  }

  void run(const std::string& sql) {
    pqxx::work tx(*conn_);
    tx.exec(sql);
    tx.commit();
  }

  // Whether a transaction now begins within `seconds` of a partition's end.
  bool near(double seconds) {
    pqxx::work tx(*conn_);
    const bool near = bounds_.near_end(tx, seconds);
    tx.commit();
    return near;
  }

  std::string db_;
  std::unique_ptr<pqxx::connection> conn_;
  std::int64_t start_ = 0;
  processor::PartitionBounds bounds_;
};

TEST_F(PartitionBoundsTest, EndsAreReadOnceAndAgainWhenAPartitionChanges) {
  EXPECT_FALSE(near(500));  // the end is 1000 s away
  EXPECT_TRUE(near(1500));
  EXPECT_FALSE(near(500));
  EXPECT_EQ(bounds_.reads(), 1U) << "read again while nothing changed";

  // A partition ahead: ends at 1000 and 3000 s.
  run("CREATE TABLE events_pb PARTITION OF events " + range(1000, 3000));
  EXPECT_FALSE(near(500));
  EXPECT_EQ(bounds_.reads(), 2U);

  // The partition of now, detached and attached again with an end 200 s
  // away, in one transaction: the same tables as before.
  run("ALTER TABLE events DETACH PARTITION events_pa; ALTER TABLE events ATTACH PARTITION "
      "events_pa " +
      range(-1000, 200));
  EXPECT_TRUE(near(500));

  // Detached concurrently: only events_pb's end, 3000 s away, is left.
  {
    pqxx::nontransaction tx(*conn_);
    tx.exec("ALTER TABLE events DETACH PARTITION events_pa CONCURRENTLY");
  }
  EXPECT_FALSE(near(2500));
  EXPECT_TRUE(near(3500));

  // A new partition that ends 100 s away.
  run("CREATE TABLE events_pc PARTITION OF events " + range(-1000, 100));
  EXPECT_TRUE(near(500));
  EXPECT_EQ(bounds_.reads(), 5U);
}

}  // namespace
}  // namespace testsupport
