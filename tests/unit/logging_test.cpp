#include "pipeline/logging.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace pipeline {
namespace {

TEST(Logs, TextIsKeyValuePairsQuotedWhereNeeded) {
  EXPECT_EQ(log::render_text("batch_failed", {{"worker", 1},
                                              {"error", R"(could not "connect" to server)"},
                                              {"split", true},
                                              {"empty", ""},
                                              {"ratio", 0.5}}),
            R"(event=batch_failed worker=1 error="could not \"connect\" to server" split=true )"
            R"(empty="" ratio=0.500000)");
  EXPECT_EQ(log::render_text("x", {{"path", "a=b\nc"}}), R"(event=x path="a=b\nc")");
}

TEST(Logs, JsonIsOneObjectWithTypedFields) {
  const std::string line =
      "{\"ts\":\"t\"" +
      log::render_json("batch_failed", {{"worker", 1},
                                        {"error", "tab\there \"quoted\" \\ back\nslash \xff"},
                                        {"split", false}}) +
      "}";
  const auto parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["event"], "batch_failed");
  EXPECT_EQ(parsed["worker"], 1);
  EXPECT_EQ(parsed["split"], false);
  EXPECT_EQ(parsed["error"], "tab\there \"quoted\" \\ back\nslash \xef\xbf\xbd");
}

TEST(Logs, FirstLineOfAnError) {
  EXPECT_EQ(log::first_line("ERROR:  disk full\nHINT: free some", 100), "ERROR:  disk full");
  EXPECT_EQ(log::first_line("abcdef", 3), "abc");
}

}  // namespace
}  // namespace pipeline
