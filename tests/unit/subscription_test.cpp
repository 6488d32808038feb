// GET /subscribe without servers: topic patterns, cursors, parameters, and
// the hub against a fake broker, a fake store and fake clients.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "subscribe_params.hpp"
#include "subscription_hub.hpp"
#include "topic_pattern.hpp"

namespace ingest {
namespace {

TopicPattern pattern(const std::string& text) {
  std::string error;
  auto parsed = TopicPattern::parse(text, 255, &error);
  EXPECT_TRUE(parsed) << text << ": " << error;
  return parsed.value_or(TopicPattern());
}

TEST(TopicPattern, MatchesLikeNatsSubjects) {
  EXPECT_TRUE(pattern("orders.created").matches("orders.created"));
  EXPECT_FALSE(pattern("orders.created").matches("orders.created2"));
  EXPECT_TRUE(pattern("orders.*").matches("orders.created"));
  EXPECT_FALSE(pattern("orders.*").matches("orders"));
  EXPECT_FALSE(pattern("orders.*").matches("orders.a.b"));
  EXPECT_FALSE(pattern("orders.*").matches("ordersx.a"));
  EXPECT_TRUE(pattern("orders.>").matches("orders.a.b"));
  EXPECT_TRUE(pattern("orders.>").matches("orders.a"));
  EXPECT_FALSE(pattern("orders.>").matches("orders"));
  EXPECT_TRUE(pattern("*.created").matches("orders.created"));
  EXPECT_FALSE(pattern("*.created").matches("orders.paid"));
  EXPECT_TRUE(pattern(">").matches("anything.at.all"));
  EXPECT_TRUE(pattern("a.*.c.>").matches("a.b.c.d.e"));
  EXPECT_FALSE(pattern("a.*.c.>").matches("a.b.c"));
  EXPECT_TRUE(TopicPattern().matches("x"));
}

TEST(TopicPattern, RefusesWhatNoTopicCouldMatchAndNamesTheParameter) {
  for (const char* text : {"", "a..b", ".a", "a.", "a.>.b", "a.b*", "a b", "é", "a.*x"}) {
    std::string error;
    EXPECT_FALSE(TopicPattern::parse(text, 255, &error)) << text;
    EXPECT_EQ(error.rfind("topic:", 0), 0U) << error;
  }
  std::string error;
  EXPECT_FALSE(TopicPattern::parse(std::string(10, 'a'), 9, &error));
}

TEST(TopicPattern, LiteralPrefixIsWhatEveryMatchStartsWith) {
  EXPECT_EQ(pattern("orders.*").literal_prefix(), "orders.");
  EXPECT_EQ(pattern("orders.eu.>").literal_prefix(), "orders.eu.");
  EXPECT_EQ(pattern("*.created").literal_prefix(), "");
  EXPECT_EQ(pattern("orders.created").literal_prefix(), "orders.created");
  EXPECT_TRUE(pattern("orders.created").exact());
}

TEST(EventPosition, TokensRoundTripAndOrder) {
  const EventPosition position{1796051360851089652, 42};
  EXPECT_EQ(position.token(), "1796051360851089652-42");
  EXPECT_EQ(EventPosition::parse(position.token()), position);
  for (const char* bad :
       {"", "-", "1-", "-1", "1-2-3", "a-1", "1-b", "-5-1", "1 -2", "99999999999999999999-1"}) {
    EXPECT_FALSE(EventPosition::parse(bad)) << bad;
  }
  EXPECT_LT((EventPosition{1, 99}), (EventPosition{2, 1})) << "incarnation first";
  EXPECT_LT((EventPosition{2, 1}), (EventPosition{2, 2}));
}

TEST(SubscribeParams, LastEventIdThenAfterThenSinceThenNow) {
  std::map<std::string, std::string> values = {
      {"topic", "orders.*"}, {"after", "5-10"}, {"since", "2026-11-24T10:00:00Z"}};
  const auto params = [&](const std::string& name) -> std::optional<std::string> {
    const auto it = values.find(name);
    return it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  std::string error;
  auto request = parse_subscribe_request(params, "5-20", 255, &error);
  ASSERT_TRUE(request) << error;
  EXPECT_EQ(request->start.kind, SubscriptionStart::Kind::kAfter);
  EXPECT_EQ(request->start.after, (EventPosition{5, 20}));
  EXPECT_TRUE(request->pattern.matches("orders.paid"));
  request = parse_subscribe_request(params, "", 255, &error);
  EXPECT_EQ(request->start.after, (EventPosition{5, 10}));
  values.erase("after");
  request = parse_subscribe_request(params, "", 255, &error);
  EXPECT_EQ(request->start.kind, SubscriptionStart::Kind::kSince);
  EXPECT_EQ(request->start.since_micros, 1795514400000000LL);
  values.clear();
  request = parse_subscribe_request(params, "", 255, &error);
  EXPECT_EQ(request->start.kind, SubscriptionStart::Kind::kNow);
  EXPECT_TRUE(request->pattern.everything());

  EXPECT_FALSE(parse_subscribe_request(params, "nope", 255, &error));
  EXPECT_EQ(error.rfind("Last-Event-ID", 0), 0U);
  values = {{"since", "tuesday"}};
  EXPECT_FALSE(parse_subscribe_request(params, "", 255, &error));
  EXPECT_EQ(error.rfind("since", 0), 0U);
}

// --- the hub --------------------------------------------------------------------

struct FakeBroker final : SettledSource {
  std::optional<EventPosition> floor{EventPosition{7, 0}};
  std::optional<EventPosition> settled() override { return floor; }
};

// Rows kept by position; the store "commits" rows in any order.
struct FakeStore final : StoredEventSource {
  std::map<EventPosition, StoredEvent> rows;
  int reads = 0;
  bool fail = false;
  void store(EventPosition at, const std::string& topic, const std::string& id) {
    rows[at] = {at, topic, nlohmann::json{{"topic", topic}, {"event_id", id}}.dump(), 0};
  }
  std::vector<StoredEvent> events_between(EventPosition after, EventPosition upto,
                                          std::size_t limit, const std::string& prefix) override {
    if (fail) throw std::runtime_error("database gone");
    ++reads;
    std::vector<StoredEvent> out;
    for (auto it = rows.upper_bound(after); it != rows.end() && it->first <= upto; ++it) {
      if (!prefix.empty() && it->second.topic.rfind(prefix, 0) != 0) continue;
      out.push_back(it->second);
      if (out.size() == limit) break;
    }
    return out;
  }
  std::optional<EventPosition> before_stored_since(std::int64_t /*micros*/) override {
    if (rows.empty()) return std::nullopt;
    EventPosition first = rows.begin()->first;
    --first.seq;
    return first;
  }
};

// Collects the SSE frames; `stalled` leaves them unread (a client that
// stops reading).
struct FakeClient final : EventSink {
  std::string text;
  std::size_t unread = 0;
  bool stalled = false;
  bool closed = false;
  bool ended = false;
  bool aborted = false;
  bool write(std::string_view bytes, std::size_t events) override {
    if (closed) return false;
    text.append(bytes);
    if (stalled) unread += events;
    return true;
  }
  std::size_t pending() const override { return unread; }
  bool open() const override { return !closed; }
  void end() override { ended = closed = true; }
  void abort() override { aborted = closed = true; }
  // The event ids received, in order.
  std::vector<std::string> ids() const {
    std::vector<std::string> out;
    std::size_t at = 0;
    while ((at = text.find("data: ", at)) != std::string::npos) {
      const auto end = text.find('\n', at);
      out.push_back(nlohmann::json::parse(text.substr(at + 6, end - at - 6))["event_id"]);
      at = end;
    }
    return out;
  }
};

class Hub : public ::testing::Test {
 protected:
  Hub() {
    settings_.page = 3;  // small pages: every walk takes several reads
    settings_.buffer_events = 10;
    settings_.heartbeat = std::chrono::seconds(15);
    settings_.max_clients = 3;  // the limit test opens three
  }
  std::shared_ptr<FakeClient> subscribe(const std::string& topics = ">",
                                        SubscriptionStart start = {}) {
    auto client = std::make_shared<FakeClient>();
    EXPECT_EQ(hub().add(client, pattern(topics), start), SubscriptionHub::Added::kOk);
    return client;
  }
  void tick(int rounds = 1) {
    for (int i = 0; i < rounds; ++i) hub().tick(now_ += std::chrono::milliseconds(50));
  }
  SubscriptionHub& hub() {
    if (!hub_) hub_ = std::make_unique<SubscriptionHub>(broker_, store_, settings_);
    return *hub_;
  }
  FakeBroker broker_;
  FakeStore store_;
  HubSettings settings_;
  std::unique_ptr<SubscriptionHub> hub_;
  std::chrono::steady_clock::time_point now_;
};

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
  broker_.floor = EventPosition{7, 5};
  auto client = subscribe(">", {SubscriptionStart::Kind::kSince, {}, 123});
  tick(2);
  EXPECT_EQ(client->ids(), (std::vector<std::string>{"four", "five"}));
}

TEST_F(Hub, ASlowSubscriberIsCutAndTheOthersGoOn) {
  auto slow = subscribe();
  auto fast = subscribe();
  tick();
  slow->stalled = true;
  for (int seq = 1; seq <= 20; ++seq)
    store_.store({7, std::uint64_t(seq)}, "t", std::to_string(seq));
  broker_.floor = EventPosition{7, 20};
  tick();
  EXPECT_TRUE(slow->aborted) << "more than SUBSCRIBE_BUFFER_EVENTS unread";
  EXPECT_EQ(fast->ids().size(), 20U);
  EXPECT_EQ(hub().size(), 1U);
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

// Behind the live position, a client that reads nothing is sent half its
// buffer, then cut after a heartbeat interval; one that reads slowly is not.
TEST_F(Hub, AStalledSubscriberBehindIsCutAfterAHeartbeatAndASlowReaderIsNot) {
  settings_.heartbeat = std::chrono::seconds(1);  // 20 rounds
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
  EXPECT_FALSE(stalled->aborted) << "waited on, within a heartbeat";
  EXPECT_LE(stalled->unread, settings_.buffer_events) << "no more than its buffer";
  for (int round = 0; round < 30; ++round) {
    if (round % 5 == 0 && slow->unread > 0) --slow->unread;  // reads one now and then
    tick();
  }
  EXPECT_TRUE(stalled->aborted) << "nothing read for a heartbeat";
  EXPECT_FALSE(slow->aborted);
  EXPECT_EQ(other->ids().size(), 60U) << "the others go on";
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
            SubscriptionHub::Added::kUnavailable)
      << "where 'now' is cannot be known without the broker";
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
}  // namespace ingest
