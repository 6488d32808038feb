// The subscription hub without servers: subscribers that read slowly or not
// at all, the buffer in events and bytes, the budget of a round, a late
// commit under `since`, a stop (issue 18; hub_fakes.hpp).
#include "hub_fakes.hpp"

namespace ingest::hubtest {
namespace {

// A live subscriber is given at most its buffer; one that then reads
// nothing for SUBSCRIBE_SLOW_TIMEOUT is cut, and the others go on.
TEST_F(Hub, ASlowSubscriberIsCutAndTheOthersGoOn) {
  settings_.slow_after = std::chrono::seconds(1);  // 20 rounds
  auto slow = subscribe();
  auto fast = subscribe();
  tick();
  slow->stalled = true;
  for (int seq = 1; seq <= 20; ++seq)
    store_.store({7, std::uint64_t(seq)}, "t", std::to_string(seq));
  broker_.floor = EventPosition{7, 20};
  tick();
  EXPECT_EQ(slow->unread, settings_.buffer_events) << "its buffer, not the round's 20 events";
  EXPECT_FALSE(slow->aborted) << "one round is not slowness";
  tick(10);
  EXPECT_EQ(slow->unread, settings_.buffer_events) << "nothing more while it reads nothing";
  EXPECT_FALSE(slow->aborted);
  tick(12);
  EXPECT_TRUE(slow->aborted) << "beyond its buffer for SUBSCRIBE_SLOW_TIMEOUT";
  EXPECT_EQ(fast->ids().size(), 20U);
  EXPECT_EQ(hub().size(), 1U);
}

// Issue 18, item 6: a subscriber that reads steadily, slower than events
// come, is never cut: it falls back to catching up, and gets every event
// once, in order.
TEST_F(Hub, ASteadySlowReaderGetsEverythingAndIsNeverCut) {
  settings_.slow_after = std::chrono::seconds(1);
  auto reader = subscribe();
  tick();
  reader->stalled = true;
  std::uint64_t last = 0;
  for (int round = 0; round < 200; ++round) {
    for (int k = 0; k < 3; ++k, ++last) store_.store({7, last + 1}, "t", std::to_string(last + 1));
    broker_.floor = EventPosition{7, last};
    reader->read(4);  // a little faster than the 3 a round: it catches up in the end
    tick();
  }
  for (int round = 0; round < 400 && reader->ids().size() < last; ++round) {
    reader->read(4);
    tick();
  }
  EXPECT_FALSE(reader->aborted);
  std::vector<std::string> expected;
  for (std::uint64_t seq = 1; seq <= last; ++seq) expected.push_back(std::to_string(seq));
  EXPECT_EQ(reader->ids(), expected);
}

// The bytes count as the events do: big events fill a buffer of bytes.
TEST_F(Hub, TheBufferIsCountedInBytesToo) {
  settings_.buffer_events = 1000;
  settings_.buffer_bytes = 4096;
  auto client = subscribe();
  tick();
  client->stalled = true;
  for (std::uint64_t seq = 1; seq <= 20; ++seq) {
    store_.store({7, seq}, "t", std::string(1000, 'x') + std::to_string(seq));
  }
  broker_.floor = EventPosition{7, 20};
  tick(3);
  EXPECT_LE(client->unread_bytes, settings_.buffer_bytes + 1100) << "one event beyond, at most";
  EXPECT_LT(client->unread, 20U);
}

// The work of one round is bounded: a backlog of 50 events with a budget of
// 10 a round takes five rounds, every event once.
TEST_F(Hub, ARoundReadsAtMostItsBudget) {
  settings_.round_events = 10;
  settings_.buffer_events = 1000;
  auto client = subscribe();
  tick();
  for (std::uint64_t seq = 1; seq <= 50; ++seq) store_.store({7, seq}, "t", std::to_string(seq));
  broker_.floor = EventPosition{7, 50};
  tick();
  EXPECT_LE(client->ids().size(), 10U);
  tick(5);
  EXPECT_EQ(client->ids().size(), 50U);
}

// Issue 18, item 3: a `since` missed an event whose batch committed after a
// later one: the walk starts no later than the settled bound, and what was
// stored before `since` is skipped.
TEST_F(Hub, SinceMissesNothingThatCommitsLate) {
  store_.store({7, 1}, "t", "before");
  store_.rows[{7, 1}].stored_at_micros = 100;
  broker_.floor = EventPosition{7, 1};
  tick();
  store_.store({7, 3}, "t", "three");  // committed first
  store_.rows[{7, 3}].stored_at_micros = 300;
  auto client = subscribe(">", {SubscriptionStart::Kind::kSince, {}, 200});
  store_.store({7, 2}, "t", "two");  // its batch commits late
  store_.rows[{7, 2}].stored_at_micros = 310;
  broker_.floor = EventPosition{7, 3};
  tick(3);
  EXPECT_EQ(client->ids(), (std::vector<std::string>{"two", "three"}));
}

// Issue 18, item 12: a subscription attached after the hub stopped is
// ended at once (draining waited for it).
TEST_F(Hub, ASubscriptionAfterTheStopEndsAtOnce) {
  hub().stop();
  auto client = std::make_shared<FakeClient>();
  EXPECT_EQ(hub().add(client, pattern(">"), {}), SubscriptionHub::Added::kOk);
  EXPECT_TRUE(client->ended);
  EXPECT_EQ(hub().size(), 0U);
}

// Behind the live position, a client that reads nothing is sent its
// buffer, then cut after SUBSCRIBE_SLOW_TIMEOUT; one that reads slowly is not.
TEST_F(Hub, AStalledSubscriberBehindIsCutAfterAHeartbeatAndASlowReaderIsNot) {
  settings_.slow_after = std::chrono::seconds(1);  // 20 rounds
  for (std::uint64_t seq = 1; seq <= 60; ++seq) store_.store({7, seq}, "t", std::to_string(seq));
  broker_.floor = EventPosition{7, 60};
  auto stalled = std::make_shared<FakeClient>();
  auto slow = std::make_shared<FakeClient>();
  stalled->stalled = slow->stalled = true;
  const SubscriptionStart from_start{SubscriptionStart::Kind::kAfter, {7, 0}, 0};
  ASSERT_EQ(hub().add(stalled, pattern(">"), from_start), SubscriptionHub::Added::kOk);
  ASSERT_EQ(hub().add(slow, pattern(">"), from_start), SubscriptionHub::Added::kOk);
  auto other = subscribe(">", from_start);
  tick(10);
  EXPECT_FALSE(stalled->aborted) << "waited on, within SUBSCRIBE_SLOW_TIMEOUT";
  EXPECT_LE(stalled->unread, settings_.buffer_events + settings_.page) << "about its buffer";
  for (int round = 0; round < 30; ++round) {
    if (round % 5 == 0) slow->read(slow->unread);  // reads now and then
    tick();
  }
  EXPECT_TRUE(stalled->aborted) << "nothing read for SUBSCRIBE_SLOW_TIMEOUT; unread "
                                << stalled->unread << ", ids " << stalled->ids().size();
  EXPECT_FALSE(slow->aborted);
  EXPECT_EQ(other->ids().size(), 60U) << "the others go on";
}

}  // namespace
}  // namespace ingest::hubtest
