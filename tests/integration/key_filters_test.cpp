// The key filters of sealed partitions against a real PostgreSQL: a repeat
// of a key a sealed partition holds is still a duplicate, the lookup skips
// what the filters rule out, a partition is not sealed while a transaction
// from before its end is open, and a dropped partition's filter goes too.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "key_filters.hpp"
#include "pipeline/database.hpp"
#include "pipeline/event.hpp"
#include "pipeline_fixture.hpp"
#include "processor/batch_writer.hpp"
#include "processor/partitions.hpp"

namespace testsupport {
namespace {

using processor::IncomingMessage;

constexpr std::int64_t kIncarnation = 1'700'000'000'000'000'000;

class KeyFilters : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = shared_postgres().create_database();
    conn_ = std::make_unique<pqxx::connection>(shared_postgres().url(db_));
  }

  // The schema (its events_legacy partition ends now), 1000 events in it
  // (old-0 ...), and the partitions ahead.
  void migrate_and_fill() {
    pipeline::db::apply_migrations(*conn_);
    {
      pqxx::nontransaction tx(*conn_);
      tx.exec(
          "INSERT INTO events (topic, event_id, ts, source, stream_created, stream_seq, stored_at) "
          "SELECT 'bw', 'old-' || i, now(), 'test', " +
          std::to_string(kIncarnation) +
          ", i + 1, now() - interval '1 day' FROM generate_series(0, 999) i");
    }
    processor::ensure_partitions(*conn_, processor::PartitionSettings{});
  }

  static IncomingMessage message(std::uint64_t seq, const std::string& id) {
    pipeline::Event e;
    e.topic = "bw";
    e.event_id = id;
    e.timestamp = "2026-11-24T10:00:00.000000Z";
    e.source = "test";
    e.payload_json = "{}";
    IncomingMessage m;
    m.position = {kIncarnation, seq};
    m.subject = "events.bw";
    m.data = pipeline::encode_event(e);
    return m;
  }

  // old-0..old-99 again (as later messages) and new-0..new-99.
  static std::vector<IncomingMessage> repeats_and_news() {
    std::vector<IncomingMessage> batch;
    batch.reserve(200);
    for (int i = 0; i < 100; ++i) batch.push_back(message(2001 + i, "old-" + std::to_string(i)));
    for (int i = 0; i < 100; ++i) batch.push_back(message(3001 + i, "new-" + std::to_string(i)));
    return batch;
  }

  std::int64_t rows(const std::string& like) {
    pqxx::nontransaction tx(*conn_);
    return tx.exec_params1("SELECT count(*) FROM events WHERE event_id LIKE $1", like)[0]
        .as<std::int64_t>();
  }

  std::string db_;
  std::unique_ptr<pqxx::connection> conn_;
};

TEST_F(KeyFilters, ARepeatOfAKeyInASealedPartitionIsStillADuplicate) {
  migrate_and_fill();
  EXPECT_EQ(processor::build_key_filters(*conn_, 0), std::vector<std::string>{"events_legacy"});
  auto filters = std::make_shared<processor::KeyFilters>(std::size_t{1} << 20);
  filters->refresh(*conn_);
  const auto set = filters->snapshot();
  ASSERT_EQ(set->filters.size(), 1U);
  ASSERT_TRUE(set->cut.has_value());
  EXPECT_EQ(*set->cut, processor::list_partitions(*conn_).front().to_micros);

  processor::BatchWriter writer(shared_postgres().url(db_), std::chrono::seconds(12), filters);
  const processor::BatchResult result = writer.write(repeats_and_news());
  EXPECT_EQ(result.duplicates, 100U);
  EXPECT_EQ(result.stored, 100U);
  EXPECT_EQ(rows("old-%"), 1000);
  EXPECT_EQ(rows("new-%"), 100);
  // The same messages again: each recognised as itself, nothing counted twice.
  const processor::BatchResult again = writer.write(repeats_and_news());
  EXPECT_EQ(again.duplicates, 0U);
  EXPECT_EQ(again.stored, 0U);
  EXPECT_EQ(rows("new-%"), 100);
}

// The processor hashes a batch's keys itself: its hash must be PostgreSQL's
// event_key (the stored key_hash), whatever the text, or a repeat would be
// looked up under another key and stored twice across partitions.
TEST_F(KeyFilters, TheProcessorsKeyIsTheStoredKeyHash) {
  pipeline::db::apply_migrations(*conn_);
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"orders", "42"},
      {"caf\u00e9", "\u00e9v\u00e9nement-\U0001F600"},
      {"a.b-c_d", "with \"quotes\", \\backslash\\ and {braces}"},
      {"t", std::string(300, 'x')},
      {"t", "tab\there"}};
  pqxx::nontransaction tx(*conn_);
  for (const auto& [topic, event_id] : keys) {
    EXPECT_EQ(
        processor::key_text(processor::event_key(topic, event_id)),
        tx.exec_params1("SELECT event_key($1, $2)::text", topic, event_id)[0].as<std::string>())
        << topic << ":" << event_id;
  }
}

TEST_F(KeyFilters, TheLookupSkipsWhatTheFiltersRuleOut) {
  migrate_and_fill();
  ASSERT_EQ(processor::build_key_filters(*conn_, 0).size(), 1U);
  auto filters = std::make_shared<processor::KeyFilters>(std::size_t{1} << 20);
  filters->refresh(*conn_);
  // A row the sealed partition gets after its filter was built (by hand:
  // no writer can): the filters rule its key out, so the lookup does not see
  // it there, while a writer without filters does.
  {
    pqxx::nontransaction tx(*conn_);
    tx.exec(
        "INSERT INTO events (topic, event_id, ts, source, stream_seq, stored_at) "
        "VALUES ('bw', 'late', now(), 'test', 9000, now() - interval '1 day')");
  }
  processor::BatchWriter filtered(shared_postgres().url(db_), std::chrono::seconds(12), filters);
  processor::BatchWriter plain(shared_postgres().url(db_));
  EXPECT_EQ(plain.write({message(9001, "late")}).duplicates, 1U);
  EXPECT_EQ(filtered.write({message(9002, "late")}).stored, 1U);
  EXPECT_EQ(rows("late"), 2);
}

TEST_F(KeyFilters, NoFilterIsBuiltBeforeThePartitionIsSealedOrPastTheBudget) {
  pqxx::connection other(shared_postgres().url(db_));
  pqxx::work open(other);
  open.exec("SELECT 1");  // its transaction began before events_legacy's end
  migrate_and_fill();
  EXPECT_TRUE(processor::build_key_filters(*conn_, 0).empty());
  open.commit();
  EXPECT_EQ(processor::build_key_filters(*conn_, 0), std::vector<std::string>{"events_legacy"});
  // Nor before the margin after its end has passed.
  {
    pqxx::nontransaction tx(*conn_);
    tx.exec("DELETE FROM key_filters");
  }
  EXPECT_TRUE(processor::build_key_filters(*conn_, 3'600'000'000).empty());
  // Nor one whose filter no processor could hold (1000 keys: 2,048 bytes).
  EXPECT_TRUE(processor::build_key_filters(*conn_, 0, 2047).empty());
  EXPECT_EQ(processor::build_key_filters(*conn_, 0, 2048).size(), 1U);
}

TEST_F(KeyFilters, ADroppedPartitionsFilterGoesWithIt) {
  migrate_and_fill();
  ASSERT_EQ(processor::build_key_filters(*conn_, 0).size(), 1U);
  auto filters = std::make_shared<processor::KeyFilters>(std::size_t{1} << 20);
  filters->refresh(*conn_);
  ASSERT_EQ(filters->snapshot()->filters.size(), 1U);
  // A budget too small for the filter: none held, every partition looked up.
  processor::KeyFilters tiny(0);
  tiny.refresh(*conn_);
  EXPECT_FALSE(tiny.snapshot()->cut.has_value());
  {
    pqxx::nontransaction tx(*conn_);
    tx.exec("ALTER TABLE events DETACH PARTITION events_legacy");
    tx.exec("DROP TABLE events_legacy");
  }
  EXPECT_TRUE(processor::build_key_filters(*conn_, 0).empty());
  {
    pqxx::nontransaction tx(*conn_);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM key_filters")[0].as<int>(), 0);
  }
  filters->refresh(*conn_);
  EXPECT_FALSE(filters->snapshot()->cut.has_value());
}

}  // namespace
}  // namespace testsupport
