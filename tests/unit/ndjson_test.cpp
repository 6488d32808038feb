// NDJSON bodies: one event per line, each judged alone.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "pipeline/event.hpp"

namespace pipeline {
namespace {

std::string line(const std::string& id, const std::string& payload = "{}") {
  return R"({"topic":"logs.app","event_id":")" + id +
         R"(","timestamp":"2026-11-24T10:00:00Z","source":"shipper","payload":)" + payload + "}";
}

TEST(Ndjson, OneEventPerLineBlankLinesAndCrlfAllowed) {
  const std::string body =
      line("1") + "\n\n" + line("2", R"({"n":1e400})") + "\r\n   \n" + line("3") + "\n";
  const PublishBody parsed = parse_ndjson_body(body, {});
  ASSERT_FALSE(parsed.error) << parsed.error->message;
  ASSERT_EQ(parsed.verdicts.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(parsed.verdicts[i].event) << parsed.verdicts[i].error;
    EXPECT_EQ(parsed.verdicts[i].index, i);
    EXPECT_EQ(parsed.verdicts[i].event->event_id, std::to_string(i + 1));
  }
  EXPECT_EQ(parsed.verdicts[1].event->payload_json, R"({"n":1e400})") << "exact numbers";
  EXPECT_EQ(parse_ndjson_body(line("no-newline"), {}).verdicts.size(), 1u);
}

TEST(Ndjson, ABadLineIsRejectedAloneAndNamed) {
  const std::string body = line("1") + "\n{not json\n" + line("3") + "\n[1,2]\n" +
                           R"({"topic":"t","event_id":"5"})" + "\n" + line("6") + "\n";
  const PublishBody parsed = parse_ndjson_body(body, {});
  ASSERT_FALSE(parsed.error);
  ASSERT_EQ(parsed.verdicts.size(), 6u);
  EXPECT_TRUE(parsed.verdicts[0].event);
  EXPECT_EQ(parsed.verdicts[1].error.rfind("line 2: malformed JSON", 0), 0u)
      << parsed.verdicts[1].error;
  EXPECT_EQ(parsed.verdicts[1].attribute, "event");
  EXPECT_TRUE(parsed.verdicts[2].event);
  EXPECT_EQ(parsed.verdicts[3].error, "line 4: event: must be a JSON object");
  EXPECT_EQ(parsed.verdicts[4].error, "line 5: timestamp: is required");
  EXPECT_EQ(parsed.verdicts[4].attribute, "timestamp");
  EXPECT_EQ(parsed.verdicts[4].topic, "t");
  EXPECT_TRUE(parsed.verdicts[5].event);
}

TEST(Ndjson, LimitsApply) {
  ValidationLimits limits;
  limits.max_events_per_request = 2;
  const std::string three = line("1") + "\n" + line("2") + "\n" + line("3") + "\n";
  EXPECT_EQ(parse_ndjson_body(three, limits).error->kind, BodyErrorKind::kTooManyEvents);
  EXPECT_EQ(parse_ndjson_body(line("1") + "\n\n\n" + line("2") + "\n\n", limits).verdicts.size(),
            2u)
      << "blank lines are no events";
  EXPECT_EQ(parse_ndjson_body("\n \r\n", {}).error->kind, BodyErrorKind::kWrongShape);
  EXPECT_EQ(parse_ndjson_body("", {}).error->kind, BodyErrorKind::kWrongShape);
  // Too deep: that line alone, checked before it is parsed.
  const std::string deep = std::string(200, '[') + std::string(200, ']');
  const PublishBody parsed = parse_ndjson_body(line("1") + "\n" + deep + "\n", {});
  ASSERT_EQ(parsed.verdicts.size(), 2u);
  EXPECT_TRUE(parsed.verdicts[0].event);
  EXPECT_EQ(parsed.verdicts[1].error.rfind("line 2: JSON nesting deeper than max_body_depth", 0),
            0u)
      << parsed.verdicts[1].error;
}

}  // namespace
}  // namespace pipeline
