// The Elasticsearch bulk decoder and its answer, without servers.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "protocols/es_bulk.hpp"

namespace ingest {
namespace {

using nlohmann::json;

const pipeline::ValidationLimits kLimits{};
constexpr std::int64_t kNow = 1'700'000'000'000'000;

bulk::Decoded decode(const std::string& body, const std::string& path_index = "") {
  return bulk::decode(body, path_index, {}, kLimits, kNow);
}

TEST(EsBulk, CreateAndIndexBecomeEventsTheOthersAreRefusedAlone) {
  const auto decoded = decode(
      R"({"create":{"_index":"logs-a","_id":"1"}})"
      "\n"
      R"({"@timestamp":"2026-11-24T10:00:00Z","host":{"name":"h1"},"n":18446744073709551616})"
      "\n"
      R"({"index":{"_type":"_doc"}})"
      "\n"
      R"({"timestamp":1764842400123,"host":"h2"})"
      "\n"
      R"({"delete":{"_index":"x","_id":"1"}})"
      "\n"
      R"({"update":{"_index":"x","_id":"1"}})"
      "\n"
      R"({"doc":{"a":1}})"
      "\n",
      "path-index");
  ASSERT_FALSE(decoded.error) << *decoded.error;
  ASSERT_EQ(decoded.items.size(), 4U);
  ASSERT_EQ(decoded.body.verdicts.size(), 2U);
  const pipeline::Event& first = *decoded.body.verdicts[0].event;
  EXPECT_EQ(first.topic, "logs-a");
  EXPECT_EQ(first.event_id, "1");
  EXPECT_EQ(first.source, "h1");
  EXPECT_EQ(first.timestamp, "2026-11-24T10:00:00.000000Z");
  EXPECT_NE(first.payload_json.find("18446744073709551616"), std::string::npos) << "kept exactly";
  const pipeline::Event& second = *decoded.body.verdicts[1].event;
  EXPECT_EQ(second.topic, "path-index");
  EXPECT_EQ(second.source, "h2");
  EXPECT_EQ(second.timestamp, "2025-12-04T10:00:00.123000Z");
  EXPECT_EQ(second.event_id.rfind("bulk-", 0), 0U);
  EXPECT_FALSE(decoded.items[2].error.empty());
  EXPECT_FALSE(decoded.items[3].error.empty());
}

TEST(EsBulk, TheSameDocumentIsTheSameIdentityAndDatesHaveTheirFormats) {
  const std::string doc = R"({"message":"x"})";
  const auto a = decode("{\"create\":{\"_index\":\"i\"}}\n" + doc + "\n");
  const auto b = decode("{\"index\":{}}\n" + doc + "\n", "i");
  EXPECT_EQ(a.body.verdicts[0].event->event_id, b.body.verdicts[0].event->event_id);
  for (const auto& [date, expected] : std::vector<std::pair<std::string, std::string>>{
           {R"("2026-11-24T10:00:00")", "2026-11-24T10:00:00.000000Z"},
           {R"("2026-11-24")", "2026-11-24T00:00:00.000000Z"},
           {R"("2026-11-24T11:00:00+01:00")", "2026-11-24T10:00:00.000000Z"},
           {R"("1764842400000")", "2025-12-04T10:00:00.000000Z"}}) {
    const auto decoded = decode("{\"create\":{\"_index\":\"i\"}}\n{\"@timestamp\":" + date + "}\n");
    ASSERT_TRUE(decoded.body.verdicts[0].event) << date << ": " << decoded.body.verdicts[0].error;
    EXPECT_EQ(decoded.body.verdicts[0].event->timestamp, expected) << date;
  }
  const auto bad = decode("{\"create\":{\"_index\":\"i\"}}\n{\"@timestamp\":\"yesterday\"}\n");
  EXPECT_FALSE(bad.body.verdicts[0].event);
  const auto duplicate = decode("{\"create\":{\"_index\":\"i\"}}\n{\"a\":1,\"a\":2}\n");
  EXPECT_FALSE(duplicate.body.verdicts[0].event) << "a repeated member name, as in /publish";
}

TEST(EsBulk, WhatElasticsearchRefusesWholeIsRefusedWhole) {
  EXPECT_TRUE(decode("").error);
  EXPECT_TRUE(decode("{\"create\":{\"_index\":\"i\"}}\n{}").error) << "no final newline";
  EXPECT_TRUE(decode("[1]\n").error);
  EXPECT_TRUE(decode("{\"upsert\":{}}\n{}\n").error);
  EXPECT_TRUE(decode("{\"create\":{\"_index\":[1]}}\n{}\n").error);
  EXPECT_TRUE(decode("{\"create\":{\"_index\":\"i\"}}\n").error) << "no document line";
  pipeline::ValidationLimits one = kLimits;
  one.max_events_per_request = 1;
  EXPECT_TRUE(
      bulk::decode("{\"create\":{}}\n{}\n{\"create\":{}}\n{}\n", "i", {}, one, kNow).too_many);
}

TEST(EsBulk, TheAnswerIsElasticsearchsItemByItem) {
  const auto decoded = decode(
      "{\"create\":{\"_index\":\"i\",\"_id\":\"a\"}}\n{}\n"
      "{\"create\":{\"_index\":\"i\",\"_id\":\"b\"}}\n{}\n"
      "{\"index\":{\"_index\":\"i\",\"_id\":\"c\"}}\n{}\n"
      "{\"create\":{\"_index\":\"i\",\"_id\":\"d\"}}\n{}\n"
      "{\"delete\":{\"_index\":\"i\",\"_id\":\"e\"}}\n");
  PublishReport report;
  report.results.resize(4);
  report.results[0].status = EventStatus::kAccepted;
  report.results[1].status = EventStatus::kDuplicate;
  report.results[2].status = EventStatus::kDuplicate;
  report.results[3].status = EventStatus::kFailed;
  const std::string text = bulk::response(decoded, report, 3);
  EXPECT_EQ(text.rfind("{\"took\":3,\"errors\":true,\"items\":[", 0), 0U) << text;
  const json answer = json::parse(text);
  EXPECT_EQ(answer["items"][0]["create"]["status"], 201);
  EXPECT_EQ(answer["items"][0]["create"]["result"], "created");
  EXPECT_EQ(answer["items"][1]["create"]["status"], 409);
  EXPECT_EQ(answer["items"][1]["create"]["error"]["type"], "version_conflict_engine_exception");
  EXPECT_EQ(answer["items"][2]["index"]["status"], 200) << "an index repeat is no failure";
  EXPECT_EQ(answer["items"][3]["create"]["status"], 429);
  EXPECT_EQ(answer["items"][4]["delete"]["status"], 400);
  const json error = json::parse(bulk::error_body(400, "illegal_argument_exception", "why"));
  EXPECT_EQ(error["error"]["root_cause"][0]["reason"], "why");
  EXPECT_EQ(error["status"], 400);
}

}  // namespace
}  // namespace ingest
