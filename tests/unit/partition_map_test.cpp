// Which partitions a page of GET /events reads (ingest/src/queries/
// partition_map.hpp): the sealed ones whose range of ts meets the query, in
// the order a page reaches them, and the condition on stored_at that reads
// them with every partition not sealed.
#include <gtest/gtest.h>

#include "queries/partition_map.hpp"

namespace {

using ingest::PartitionSpan;

// Partitions [0,10) [10,20) [20,30) [30,40) [40,50) of stored_at (seconds
// here, micros to the code); the first three sealed with ranges of ts.
std::vector<PartitionSpan> spans() {
  return {
      {std::nullopt, 10, true, 100, 150},          // MINVALUE to 10
      {10, 20, true, 140, 300},                    // overlaps the first
      {20, 30, true, std::nullopt, std::nullopt},  // sealed, empty
      {30, 40, false, std::nullopt, std::nullopt},
      {40, 50, false, std::nullopt, std::nullopt},
  };
}

TEST(PartitionMap, CandidatesAreTheSealedOnesWithRowsInTheWindowInPageOrder) {
  const auto s = spans();
  EXPECT_EQ(ingest::sealed_candidates(s, {}, false), (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(ingest::sealed_candidates(s, {}, true), (std::vector<std::size_t>{1, 0}));
  EXPECT_EQ(ingest::sealed_candidates(s, {160, std::nullopt}, false),
            (std::vector<std::size_t>{1}));
  EXPECT_EQ(ingest::sealed_candidates(s, {std::nullopt, 139}, true), (std::vector<std::size_t>{0}));
  EXPECT_EQ(ingest::sealed_candidates(s, {150, 150}, true), (std::vector<std::size_t>{1, 0}));
  EXPECT_TRUE(ingest::sealed_candidates(s, {301, std::nullopt}, true).empty());
}

TEST(PartitionMap, APageReachesThoseWhoseRangeGetsToItsLastRow) {
  const auto s = spans();
  const std::vector<std::size_t> desc{1, 0};
  EXPECT_EQ(ingest::candidates_reaching(s, desc, 400, true), 0u);
  EXPECT_EQ(ingest::candidates_reaching(s, desc, 300, true), 1u);  // ties reach
  EXPECT_EQ(ingest::candidates_reaching(s, desc, 150, true), 2u);
  const std::vector<std::size_t> asc{0, 1};
  EXPECT_EQ(ingest::candidates_reaching(s, asc, 99, false), 0u);
  EXPECT_EQ(ingest::candidates_reaching(s, asc, 139, false), 1u);
  EXPECT_EQ(ingest::candidates_reaching(s, asc, 140, false), 2u);
}

TEST(PartitionMap, TheConditionReadsTheChosenAndEveryPartitionNotSealed) {
  auto s = spans();
  for (auto& span : s) {
    if (span.from_micros) *span.from_micros *= 1'000'000;
    span.to_micros *= 1'000'000;
  }
  // None of the sealed ones: from the first not sealed on, open-ended.
  EXPECT_EQ(ingest::stored_at_condition(s, {1, 0}, 0),
            "((stored_at >= '1970-01-01T00:00:30.000000Z'))");
  // The second (and the empty third is skipped): two ranges.
  EXPECT_EQ(ingest::stored_at_condition(s, {1, 0}, 1),
            "((stored_at >= '1970-01-01T00:00:10.000000Z' AND stored_at < "
            "'1970-01-01T00:00:20.000000Z') OR (stored_at >= '1970-01-01T00:00:30.000000Z'))");
  // The first, from MINVALUE.
  EXPECT_EQ(ingest::stored_at_condition(s, {0}, 1),
            "((stored_at < '1970-01-01T00:00:10.000000Z') OR "
            "(stored_at >= '1970-01-01T00:00:30.000000Z'))");
  // Every partition: no condition.
  s[2].sealed = false;
  EXPECT_EQ(ingest::stored_at_condition(s, {1, 0}, 2), "");
  // Every one sealed and none chosen: only what comes after the last.
  for (auto& span : s) span.sealed = true;
  EXPECT_EQ(ingest::stored_at_condition(s, {}, 0),
            "((stored_at >= '1970-01-01T00:00:50.000000Z'))");
}

}  // namespace
