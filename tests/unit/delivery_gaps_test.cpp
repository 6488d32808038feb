// Gaps in what the broker delivers (processor/src/delivery_gaps.hpp): found
// between first deliveries with consecutive consumer sequences, whichever
// worker noted which; repaired by loading the skipped messages by sequence.
#include <gtest/gtest.h>

#include <set>

#include "delivery_gaps.hpp"

namespace processor {
namespace {

TEST(DeliveryGaps, ConsecutiveDeliveriesShowNoGap) {
  DeliveryGaps gaps;
  for (std::uint64_t d = 1; d <= 20000; ++d) {
    EXPECT_TRUE(gaps.record(d, d + 40, true).empty()) << d;
  }
}

TEST(DeliveryGaps, AJumpInStreamSequenceIsAGapInEitherOrder) {
  DeliveryGaps gaps;
  ASSERT_TRUE(gaps.record(10, 110, true).empty());
  const auto found = gaps.record(11, 587, true);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].from, 111u);
  EXPECT_EQ(found[0].to, 586u);
  EXPECT_EQ(found[0].size(), 476u);

  // Two workers: the later delivery may be noted first.
  ASSERT_TRUE(gaps.record(21, 700, true).empty());
  const auto reversed = gaps.record(20, 600, true);
  ASSERT_EQ(reversed.size(), 1u);
  EXPECT_EQ(reversed[0].from, 601u);
  EXPECT_EQ(reversed[0].to, 699u);
}

TEST(DeliveryGaps, ARedeliveryBetweenIsNoGap) {
  DeliveryGaps gaps;
  ASSERT_TRUE(gaps.record(5, 50, true).empty());
  EXPECT_TRUE(gaps.record(6, 12, false).empty());  // a redelivery of an earlier message
  EXPECT_TRUE(gaps.record(7, 51, true).empty());
  EXPECT_TRUE(gaps.record(8, 60, false).empty());
}

TEST(DeliveryGaps, ForgottenAfterClear) {
  DeliveryGaps gaps;
  ASSERT_TRUE(gaps.record(3, 3000, true).empty());
  gaps.clear();
  EXPECT_TRUE(gaps.record(4, 5, true).empty());  // a consumer made again starts over
}

IncomingMessage message_at(std::uint64_t seq) {
  IncomingMessage m;
  m.position.seq = seq;
  return m;
}

TEST(RepairGaps, FoundMessagesAreStoredAndMissingOnesCountedGone) {
  const std::set<std::uint64_t> in_stream{101, 102, 104, 200};
  std::vector<std::uint64_t> stored;
  const GapRepair repair = repair_gaps(
      {{101, 104}, {200, 200}}, 100,
      [&](std::uint64_t seq) -> std::optional<IncomingMessage> {
        if (in_stream.count(seq) == 0) return std::nullopt;
        return message_at(seq);
      },
      [&](const std::vector<IncomingMessage>& found) {
        for (const auto& m : found) stored.push_back(m.position.seq);
        return std::vector<std::uint64_t>{};
      });
  EXPECT_EQ(stored, (std::vector<std::uint64_t>{101, 102, 104, 200}));
  EXPECT_EQ(repair.recovered, 4u);
  EXPECT_EQ(repair.gone, 1u);
  EXPECT_TRUE(repair.again.empty());
}

TEST(RepairGaps, UnsettledAndOverBudgetAreLeftForLater) {
  const GapRepair repair = repair_gaps(
      {{1, 10}}, 6,
      [](std::uint64_t seq) { return std::optional<IncomingMessage>(message_at(seq)); },
      [](const std::vector<IncomingMessage>&) {
        return std::vector<std::uint64_t>{3, 4};
      });
  EXPECT_EQ(repair.recovered, 4u);  // 1, 2, 5, 6
  EXPECT_EQ(repair.gone, 0u);
  std::uint64_t left = 0;
  std::set<std::uint64_t> seqs;
  for (const auto& gap : repair.again) {
    left += gap.size();
    for (std::uint64_t s = gap.from; s <= gap.to; ++s) seqs.insert(s);
  }
  EXPECT_EQ(left, 6u);
  EXPECT_EQ(seqs, (std::set<std::uint64_t>{3, 4, 7, 8, 9, 10}));
}

TEST(RepairGaps, ABrokerThatDoesNotAnswerThrowsToTheCaller) {
  EXPECT_THROW(
      repair_gaps(
          {{1, 2}}, 10,
          [](std::uint64_t) -> std::optional<IncomingMessage> {
            throw std::runtime_error("timeout");
          },
          [](const std::vector<IncomingMessage>&) { return std::vector<std::uint64_t>{}; }),
      std::runtime_error);
}

}  // namespace
}  // namespace processor
