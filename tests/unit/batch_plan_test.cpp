// What the batch writer decides without the database: order, first copies,
// duplicates inside a batch, markers, dead letters, and the counters.
#include <gtest/gtest.h>

#include "batch_plan.hpp"

namespace processor {
namespace {

IncomingMessage message(std::uint64_t seq, const std::string& topic, const std::string& id,
                        const std::string& payload = "{}") {
  pipeline::Event event{topic, id, "2026-11-24T10:00:00.000000Z", "tests", payload};
  IncomingMessage m;
  m.position = {7, seq};
  m.subject = "events." + topic;
  m.data = pipeline::encode_event(event);
  return m;
}

IncomingMessage marker(std::uint64_t seq, const std::string& body) {
  IncomingMessage m;
  m.position = {7, seq};
  m.broker_duplicate_marker = true;
  m.data = body;
  return m;
}

TEST(BatchPlan, SortsByKeyThenStreamPositionAndTheEarliestCopyGoesFirst) {
  // The same key twice, the later-published copy first in the batch: the
  // first write (lower stream sequence) must be the one inserted.
  const std::vector<IncomingMessage> messages = {
      message(20, "b", "1", R"({"copy":"B"})"), message(5, "a", "9"),
      message(10, "b", "1", R"({"copy":"A"})"), message(3, "a", "1")};
  std::vector<StoreOutcome> outcomes(messages.size(), StoreOutcome::kStored);
  const BatchPlan plan = plan_batch(messages, outcomes);
  ASSERT_EQ(plan.rows.size(), 4U);
  std::vector<std::string> order;
  for (const auto& row : plan.rows) order.push_back(row.event.topic + "/" + row.event.event_id);
  EXPECT_EQ(order, (std::vector<std::string>{"a/1", "a/9", "b/1", "b/1"}));
  ASSERT_EQ(plan.firsts.size(), 3U);
  EXPECT_EQ(plan.rows[plan.firsts[2]].event.payload_json, R"({"copy":"A"})");
  ASSERT_EQ(plan.duplicates.size(), 1U);
  EXPECT_EQ(plan.duplicates[0].position.seq, 20U);
  EXPECT_EQ(plan.duplicates[0].message_index, 0U);
  EXPECT_EQ(outcomes[0], StoreOutcome::kDuplicate);
  EXPECT_EQ(outcomes[2], StoreOutcome::kStored);
}

TEST(BatchPlan, ManyCopiesOfOneKeyKeepTheFirstWriteWhateverTheirOrder) {
  std::vector<IncomingMessage> messages;
  for (std::uint64_t seq = 100; seq > 0; --seq) {
    messages.push_back(message(seq, "k", "same", "{\"seq\":" + std::to_string(seq) + "}"));
  }
  std::vector<StoreOutcome> outcomes(messages.size(), StoreOutcome::kStored);
  const BatchPlan plan = plan_batch(messages, outcomes);
  ASSERT_EQ(plan.firsts.size(), 1U);
  EXPECT_EQ(plan.rows[plan.firsts[0]].event.payload_json, R"({"seq":1})");
  EXPECT_EQ(plan.duplicates.size(), 99U);
}

TEST(BatchPlan, TheSameMessageTwiceIsARedeliveryAndBadBodiesAreDeadLetters) {
  std::vector<IncomingMessage> messages = {message(1, "a", "1"), message(1, "a", "1"),
                                           marker(2, "3"), marker(3, "x3"), marker(4, "0")};
  IncomingMessage garbage;
  garbage.position = {7, 5};
  garbage.data = "not an event";
  messages.push_back(garbage);
  std::vector<StoreOutcome> outcomes(messages.size(), StoreOutcome::kStored);
  const BatchPlan plan = plan_batch(messages, outcomes);
  EXPECT_EQ(outcomes[1], StoreOutcome::kRedelivered);
  EXPECT_EQ(plan.rows.size(), 1U);
  ASSERT_EQ(plan.markers.size(), 1U);
  EXPECT_EQ(plan.markers[0], (std::pair<std::size_t, std::uint64_t>{2, 3}));
  ASSERT_EQ(plan.dead.size(), 3U);
  EXPECT_EQ(plan.dead[0].first, 3U);
  EXPECT_EQ(plan.dead[2].first, 5U);
}

TEST(BatchPlan, MarkerCountsAreDecimalAndBounded) {
  std::string why;
  EXPECT_EQ(marker_count("42", &why), 42U);
  EXPECT_EQ(marker_count("1000000", &why), 1000000U);
  for (const char* body : {"", "0", "1000001", "-1", "12a", "99999999", " 1"}) {
    why.clear();
    EXPECT_EQ(marker_count(body, &why), 0U) << body;
    EXPECT_FALSE(why.empty()) << body;
  }
}

TEST(BatchPlan, TallyCountsOutcomesAndNewKeysPerTopic) {
  const std::vector<IncomingMessage> messages = {message(1, "a", "1"), message(2, "a", "2"),
                                                 message(3, "b", "1"), message(4, "b", "1")};
  BatchResult result;
  result.outcomes.assign(messages.size(), StoreOutcome::kStored);
  const BatchPlan plan = plan_batch(messages, result.outcomes);
  result.outcomes[1] = StoreOutcome::kRedelivered;  // as the database would decide
  result.duplicates = 1;
  result.broker_duplicates = 5;
  const CounterDeltas deltas = tally(result, plan);
  EXPECT_EQ(result.stored, 2U);
  EXPECT_EQ(result.redelivered, 1U);
  EXPECT_EQ(deltas.per_topic, (std::map<std::string, std::int64_t>{{"a", 1}, {"b", 1}}));
  EXPECT_EQ(deltas.totals,
            (std::vector<std::pair<std::string, std::int64_t>>{
                {"duplicate_database", 1}, {"duplicate_broker", 5}, {"unique_processed", 2}}));
}

TEST(BatchPlan, HexKeepsEveryByte) {
  EXPECT_EQ(to_hex(std::string("\x00\x7f\xff"
                               "A",
                               4)),
            "007fff41");
  EXPECT_EQ(to_hex(""), "");
}

}  // namespace
}  // namespace processor
