// What a start-up finds different between the running stream and its own
// settings, and which differences can delete stored events; the PubAck
// mapping of ingest (a duplicate with sequence 0 was not stored).
#include <gtest/gtest.h>

#include "ingest/publisher.hpp"
#include "pipeline/jetstream.hpp"

namespace {

using pipeline::nats::StreamSettings;

jsStreamConfig running_config(const char** subjects) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.MaxAge = std::int64_t{7} * 86'400 * 1'000'000'000;
  cfg.MaxBytes = StreamSettings{}.max_bytes;
  cfg.Duplicates = std::int64_t{120} * 1'000'000'000;
  cfg.Replicas = 1;
  cfg.Discard = js_DiscardNew;
  return cfg;
}

TEST(StreamDifferences, NoneForTheSameSettings) {
  const char* subjects[] = {"events.>"};
  EXPECT_TRUE(
      pipeline::nats::stream_differences(running_config(subjects), StreamSettings{}).empty());
}

TEST(StreamDifferences, SmallerLimitsCanDeleteEventsLargerOnesCannot) {
  const char* subjects[] = {"events.>"};
  StreamSettings smaller;
  smaller.max_bytes = 20000;
  smaller.max_age = std::chrono::hours(1);
  const auto found = pipeline::nats::stream_differences(running_config(subjects), smaller);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].setting, "STREAM_MAX_AGE");
  EXPECT_TRUE(found[0].can_delete_events);
  EXPECT_EQ(found[1].setting, "STREAM_MAX_BYTES");
  EXPECT_TRUE(found[1].can_delete_events);

  StreamSettings larger;
  larger.max_age = std::chrono::hours(24 * 30);
  larger.duplicate_window = std::chrono::minutes(5);
  for (const auto& d : pipeline::nats::stream_differences(running_config(subjects), larger)) {
    EXPECT_FALSE(d.can_delete_events) << d.setting;
  }
  StreamSettings unlimited_age;
  unlimited_age.max_age = std::chrono::milliseconds(0);
  const auto age = pipeline::nats::stream_differences(running_config(subjects), unlimited_age);
  ASSERT_EQ(age.size(), 1u);
  EXPECT_FALSE(age[0].can_delete_events);
}

TEST(PubAck, ADuplicateWithSequenceZeroIsAFailureToRetry) {
  EXPECT_EQ(ingest::outcome_of_puback(false, 7).status, ingest::PublishStatus::kAccepted);
  EXPECT_EQ(ingest::outcome_of_puback(true, 7).status, ingest::PublishStatus::kDuplicate);
  const auto lost = ingest::outcome_of_puback(true, 0);
  EXPECT_EQ(lost.status, ingest::PublishStatus::kRetryable);
  EXPECT_FALSE(lost.error.empty());
}

}  // namespace
