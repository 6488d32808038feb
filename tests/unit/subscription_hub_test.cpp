// The subscription hub without servers: what a subscriber gets, in which
// order, from where it starts, and the limits of the hub (hub_fakes.hpp).
#include "hub_fakes.hpp"

namespace ingest::hubtest {
namespace {

TEST_F(Hub, EachSettledEventOnceInPositionOrderWhateverTheCommitOrder) {
  auto all = subscribe();
  auto orders = subscribe("orders.*");
  auto exact = subscribe("orders.a");
  tick();
  // Rows commit out of order; the floor says what is settled.
  store_.store({7, 3}, "orders.a", "3");
  store_.store({7, 1}, "orders.a", "1");
  broker_.floor = EventPosition{7, 1};
  tick();
  store_.store({7, 2}, "other", "2");
  store_.store({7, 5}, "orders.b", "5");
  tick();
  EXPECT_EQ(all->ids(), (std::vector<std::string>{"1"})) << "3 is above the floor";
  broker_.floor = EventPosition{7, 4};
  tick();
  store_.store({7, 4}, "orders.c", "4");  // too late: 4 was settled without it
  broker_.floor = EventPosition{7, 9};
  for (int seq = 6; seq <= 9; ++seq)
    store_.store({7, std::uint64_t(seq)}, "orders.x", std::to_string(seq));
  tick(3);
  EXPECT_EQ(all->ids(), (std::vector<std::string>{"1", "2", "3", "5", "6", "7", "8", "9"}));
  EXPECT_EQ(orders->ids(), (std::vector<std::string>{"1", "3", "5", "6", "7", "8", "9"}));
  EXPECT_EQ(exact->ids(), (std::vector<std::string>{"1", "3"}));
}

TEST_F(Hub, NowMeansEventsSettledAfterTheSubscriptionStarts) {
  store_.store({7, 1}, "t", "old");
  broker_.floor = EventPosition{7, 1};
  auto client = subscribe();
  store_.store({7, 2}, "t", "new");
  broker_.floor = EventPosition{7, 2};
  tick(2);
  EXPECT_EQ(client->ids(), (std::vector<std::string>{"new"}));
}

TEST_F(Hub, AResumeCatchesUpPageByPageThenGoesLiveWithoutGapOrRepeat) {
  for (int seq = 1; seq <= 10; ++seq) {
    store_.store({7, std::uint64_t(seq)}, seq % 2 ? "a.odd" : "b.even", std::to_string(seq));
  }
  broker_.floor = EventPosition{7, 10};
  auto live = subscribe();  // now: starts at 10
  tick();
  auto resumed = subscribe(">", {SubscriptionStart::Kind::kAfter, {7, 2}, 0});
  auto odd = subscribe("a.*", {SubscriptionStart::Kind::kAfter, {7, 0}, 0});
  store_.store({7, 11}, "a.odd", "11");
  broker_.floor = EventPosition{7, 11};
  tick(6);
  EXPECT_EQ(live->ids(), (std::vector<std::string>{"11"}));
  EXPECT_EQ(resumed->ids(),
            (std::vector<std::string>{"3", "4", "5", "6", "7", "8", "9", "10", "11"}));
  EXPECT_EQ(odd->ids(), (std::vector<std::string>{"1", "3", "5", "7", "9", "11"}));
  // The frames carry the cursor: "id: <created>-<seq>".
  EXPECT_NE(resumed->text.find("id: 7-3\nevent: event\ndata: "), std::string::npos);
}

TEST_F(Hub, SinceStartsAtTheFirstEventStoredThen) {
  store_.store({7, 4}, "t", "four");
  store_.store({7, 5}, "t", "five");
  store_.rows[{7, 4}].stored_at_micros = store_.rows[{7, 5}].stored_at_micros = 200;
  broker_.floor = EventPosition{7, 5};
  auto client = subscribe(">", {SubscriptionStart::Kind::kSince, {}, 123});
  tick(2);
  EXPECT_EQ(client->ids(), (std::vector<std::string>{"four", "five"}));
}

// A hundred subscribers behind, at different cursors, while events keep
// coming: reads shared among them bring every one to the live position
// (one read each, four a round, never converged: they fell further behind).
TEST_F(Hub, ManySubscribersBehindShareTheirReadsAndAllJoinTheLiveEvents) {
  settings_.max_clients = 200;
  settings_.buffer_events = 1000;
  std::uint64_t last = 30;
  for (std::uint64_t seq = 1; seq <= last; ++seq) store_.store({7, seq}, "t", std::to_string(seq));
  broker_.floor = EventPosition{7, last};
  std::vector<std::shared_ptr<FakeClient>> clients;
  for (std::uint64_t i = 0; i < 100; ++i) {
    clients.push_back(subscribe(">", {SubscriptionStart::Kind::kAfter, {7, i % 5}, 0}));
  }
  for (int round = 0; round < 12; ++round) {
    for (int k = 0; k < 2; ++k, ++last) store_.store({7, last + 1}, "t", std::to_string(last + 1));
    broker_.floor = EventPosition{7, last};
    tick();
  }
  const int reads = store_.reads;
  tick();
  EXPECT_LE(store_.reads - reads, 1) << "once caught up, one read a round serves them all";
  for (std::size_t i = 0; i < clients.size(); ++i) {
    std::vector<std::string> expected;
    for (std::uint64_t seq = i % 5 + 1; seq <= last; ++seq) expected.push_back(std::to_string(seq));
    EXPECT_EQ(clients[i]->ids(), expected) << "subscriber " << i;
  }
}

TEST_F(Hub, ClientLimitHeartbeatsGoneClientsAndShutdown) {
  auto a = subscribe();
  auto b = subscribe();
  auto c = subscribe();
  EXPECT_EQ(hub().add(std::make_shared<FakeClient>(), TopicPattern(), {}),
            SubscriptionHub::Added::kFull);
  b->closed = true;
  tick();
  EXPECT_EQ(hub().size(), 2U) << "the closed one is gone";
  now_ += std::chrono::seconds(16);
  tick();
  EXPECT_NE(a->text.find(": ping\n\n"), std::string::npos);
  broker_.floor.reset();
  EXPECT_EQ(hub().add(std::make_shared<FakeClient>(), TopicPattern(), {}),
            SubscriptionHub::Added::kOk)
      << "'now' is the settled bound the hub saw last (it never goes back)";
  SubscriptionHub fresh(broker_, store_, settings_);
  EXPECT_EQ(fresh.add(std::make_shared<FakeClient>(), TopicPattern(), {}),
            SubscriptionHub::Added::kUnavailable)
      << "where 'now' is cannot be known without the broker or a bound seen before";
  hub().stop();
  EXPECT_TRUE(a->ended);
  EXPECT_TRUE(c->ended);
  EXPECT_EQ(hub().size(), 0U);
}

TEST_F(Hub, ADatabaseFailureDelaysButLosesNothing) {
  auto client = subscribe();
  tick();
  store_.store({7, 1}, "t", "1");
  store_.store({7, 2}, "t", "2");
  broker_.floor = EventPosition{7, 2};
  store_.fail = true;
  tick(3);
  EXPECT_TRUE(client->ids().empty());
  store_.fail = false;
  tick();
  EXPECT_EQ(client->ids(), (std::vector<std::string>{"1", "2"}));
}

TEST_F(Hub, AFloorThatMovesBackChangesNothingAndANewIncarnationWaitsItsGrace) {
  settings_.incarnation_grace = std::chrono::seconds(1);
  auto client = subscribe();
  tick();
  store_.store({7, 1}, "t", "1");
  broker_.floor = EventPosition{7, 1};
  tick();
  broker_.floor = EventPosition{7, 0};  // a failover moved it back
  tick();
  store_.store({9, 1}, "t", "new-1");  // the stream made again
  broker_.floor = EventPosition{9, 1};
  tick();
  store_.store({7, 2}, "t", "late");  // an old batch commits late
  tick();
  EXPECT_EQ(client->ids(), (std::vector<std::string>{"1"})) << "grace: the old bound holds";
  now_ += std::chrono::seconds(2);
  tick();
  EXPECT_EQ(client->ids(), (std::vector<std::string>{"1", "late", "new-1"}));
}

TEST_F(Hub, NobodyListeningMeansNoReads) {
  tick(5);
  EXPECT_EQ(store_.reads, 0);
}

}  // namespace
}  // namespace ingest::hubtest
