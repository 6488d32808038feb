#include "pipeline/logging.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace pipeline {
namespace {

// The fields as a JSON object, the way LOG_FORMAT=json writes a line.
nlohmann::json fields(std::string_view message) {
  return nlohmann::json::parse("{\"ts\":\"t\"" + json_fields(message) + "}");
}

TEST(JsonLogs, KeyValuePairsBecomeFields) {
  const auto line = fields(
      R"(event=batch_failed worker=1 error="could not "connect" to server" retry_in_ms=200)");
  EXPECT_EQ(line["event"], "batch_failed");
  EXPECT_EQ(line["worker"], "1");
  EXPECT_EQ(line["error"], R"(could not "connect" to server)");
  EXPECT_EQ(line["retry_in_ms"], "200");
  EXPECT_FALSE(line.contains("msg"));
}

TEST(JsonLogs, AnyOtherMessageIsOneEscapedMsgField) {
  for (const std::string_view text :
       {std::string_view("plain words, no pairs"), std::string_view("event=x then words"),
        std::string_view("error=\"unterminated"),
        std::string_view("tab\there \"quoted\" \\ back\nslash"), std::string_view("")}) {
    const auto line = fields(text);
    ASSERT_TRUE(line.contains("msg")) << text;
    EXPECT_EQ(line["msg"], text);
  }
}

}  // namespace
}  // namespace pipeline
