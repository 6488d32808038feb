// GET /subscribe without servers: topic patterns, cursors and parameters
// (the hub: subscription_hub_test.cpp).
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "subscriptions/subscribe_params.hpp"
#include "subscriptions/subscription_hub.hpp"
#include "subscriptions/topic_pattern.hpp"

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
       {"", "-", "1-", "-1", "1-2-3", "a-1", "1-b", "-5-1", "1 -2", "99999999999999999999-1",
        // Issue 18, item 10: above INT64_MAX a sequence wraps negative in SQL.
        "0-18446744073709551615", "1-9223372036854775808"}) {
    EXPECT_FALSE(EventPosition::parse(bad)) << bad;
  }
  EXPECT_TRUE(EventPosition::parse("1-9223372036854775807")) << "INT64_MAX is a sequence";
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

}  // namespace
}  // namespace ingest
