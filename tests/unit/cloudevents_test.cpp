// CloudEvents on the event model: the key of (source, id), the rendering of a
// stored event, and the three modes' parsing with errors that name the
// CloudEvents attribute.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "pipeline/cloudevents.hpp"

namespace pipeline::cloudevents {
namespace {

using nlohmann::json;

const UtcTimestamp kReceived{1'795'000'000'123'456};  // 2026-11-18T...

json valid() {
  return json{{"specversion", "1.0"},
              {"id", "A234-1234-1234"},
              {"source", "https://example.com/orders"},
              {"type", "com.example.order.created"},
              {"time", "2026-11-24T10:00:00+01:00"},
              {"datacontenttype", "application/json"},
              {"data", {{"amount", 42}}}};
}

EventVerdict one(const json& event) {
  const PublishBody body = parse_structured(event.dump(), false, {}, kReceived);
  EXPECT_FALSE(body.error) << body.error->message;
  EXPECT_EQ(body.verdicts.size(), 1u);
  return body.verdicts.at(0);
}

TEST(CloudEventKey, HoldsSourceAndIdUnambiguously) {
  EXPECT_EQ(event_key("https://example.com/orders", "A1", 255),
            "ce:26:https://example.com/orders:A1");
  // The length decides where source ends, whatever characters either holds.
  EXPECT_NE(event_key("a:b", "c", 255), event_key("a", "b:c", 255));
  EXPECT_NE(event_key("a:1:b", "c", 255), event_key("a", "1:b:c", 255));
  EXPECT_EQ(event_key("a", "b", 255), event_key("a", "b", 255));
}

TEST(CloudEventKey, TooLongToReadIsHashedAndStillUnique) {
  const std::string source(200, 's');
  const std::string key = event_key(source, std::string(100, 'i'), 255);
  ASSERT_EQ(key.size(), 10u + 64u) << key;
  EXPECT_EQ(key.rfind("ce-sha256:", 0), 0u);
  EXPECT_EQ(key, event_key(source, std::string(100, 'i'), 255)) << "stable";
  EXPECT_NE(key, event_key(source, std::string(101, 'i'), 255));
  EXPECT_EQ(event_key(source, "x", 50), "") << "not even the hash fits";
  // Characters, not bytes, count against the limit, as for every field.
  EXPECT_EQ(event_key("é", "ü", 9), "ce:2:é:ü");
}

TEST(CloudEventKey, IdOfGivesTheIdBackOnlyForItsOwnSource) {
  Event event;
  event.source = "https://example.com/orders";
  event.event_id = event_key(event.source, "A:1", 255);
  EXPECT_EQ(id_of(event), "A:1");
  event.source = "https://example.com/other";
  EXPECT_EQ(id_of(event), event.event_id) << "not this source's key";
  for (const char* native : {"o-1001", "ce:", "ce:x:y", "ce:99:abc", "ce:3:abc"}) {
    event.event_id = native;
    EXPECT_EQ(id_of(event), native);
  }
}

TEST(CloudEventRendering, IsAStructuredCloudEvent) {
  Event event;
  event.topic = "orders.created";
  event.source = "checkout \"eu\"";
  event.event_id = event_key(event.source, "o-1", 255);
  event.timestamp = "2026-11-24T09:00:00.000000Z";
  event.payload_json = R"({"amount": 18446744073709551616})";
  const std::string text = to_json(event);
  EXPECT_NE(text.find("18446744073709551616}"), std::string::npos) << "the payload's own text";
  const json ce = json::parse(text);
  EXPECT_EQ(ce, (json{{"specversion", "1.0"},
                      {"id", "o-1"},
                      {"source", "checkout \"eu\""},
                      {"type", "orders.created"},
                      {"time", "2026-11-24T09:00:00.000000Z"},
                      {"datacontenttype", "application/json"},
                      {"data", {{"amount", 18446744073709551616.0}}}}));
  event.event_id = "native-7";
  EXPECT_EQ(json::parse(to_json(event))["id"], "native-7");
}

TEST(CloudEventRendering, AStoredEventAsGetEventsGivesIt) {
  const std::string native =
      R"({"topic":"orders.created","event_id":"ce:4:shop:o-1","timestamp":)"
      R"("2026-11-24T09:00:00.000000Z","source":"shop","payload":{"n":1e400},)"
      R"("stored_at":"2026-11-24T09:00:01.000000Z"})";
  const std::string text = from_stored_json(native);
  EXPECT_NE(text.find(R"("data":{"n":1e400})"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("id":"o-1")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("type":"orders.created")"), std::string::npos) << text;
  EXPECT_EQ(from_stored_json("not json"), "");
  EXPECT_EQ(from_stored_json(R"({"topic":"t"})"), "");
  EXPECT_EQ(from_stored_json("[1]"), "");
}

TEST(CloudEventStructured, MapsTheAttributesOntoTheEvent) {
  const EventVerdict v = one(valid());
  ASSERT_TRUE(v.event) << v.error;
  EXPECT_EQ(v.event->topic, "com.example.order.created");
  EXPECT_EQ(v.event->source, "https://example.com/orders");
  EXPECT_EQ(v.event->event_id, "ce:26:https://example.com/orders:A234-1234-1234");
  EXPECT_EQ(v.event->timestamp, "2026-11-24T09:00:00.000000Z");
  EXPECT_EQ(v.event->payload_json, R"({"amount":42})");
  EXPECT_EQ(v.topic, v.event->topic);
  EXPECT_EQ(v.event_id, v.event->event_id);
}

TEST(CloudEventStructured, OptionalAttributesHaveDefaults) {
  json e = valid();
  e.erase("time");
  e.erase("data");
  e.erase("datacontenttype");
  e["subject"] = "ignored";
  e["myextension"] = 7;
  const EventVerdict v = one(e);
  ASSERT_TRUE(v.event) << v.error;
  EXPECT_EQ(v.event->timestamp, format_rfc3339(kReceived)) << "no time: when it was received";
  EXPECT_EQ(v.event->payload_json, "{}");
  e["data"] = nullptr;
  EXPECT_EQ(one(e).event->payload_json, "{}");
  e["datacontenttype"] = "application/vnd.example+json; charset=utf-8";
  EXPECT_TRUE(one(e).event);
}

TEST(CloudEventStructured, ErrorsNameTheAttribute) {
  const std::pair<std::function<void(json&)>, std::string> cases[] = {
      {[](json& e) { e.erase("specversion"); }, "specversion: is required"},
      {[](json& e) { e["specversion"] = "0.3"; }, "specversion: must be \"1.0\""},
      {[](json& e) { e.erase("id"); }, "id: is required"},
      {[](json& e) { e["id"] = ""; }, "id: must not be empty"},
      {[](json& e) { e["source"] = 5; }, "source: must be a string"},
      {[](json& e) { e.erase("type"); }, "type: is required"},
      {[](json& e) { e["type"] = "com/example"; }, "type: must be characters of"},
      {[](json& e) { e["time"] = "yesterday"; }, "time: "},
      {[](json& e) { e["datacontenttype"] = "text/plain"; }, "datacontenttype: only JSON"},
      {[](json& e) { e["data_base64"] = "AAEC"; }, "data_base64: binary data is not taken"},
      {[](json& e) { e["data"] = "text"; }, "data: must be a JSON object"},
      {[](json& e) { e["data"] = json::array({1}); }, "data: must be a JSON object"},
      {[](json& e) { e["id"] = std::string(300, 'x'); }, "id: longer than max_field_length"},
  };
  for (const auto& [change, expected] : cases) {
    json e = valid();
    change(e);
    const EventVerdict v = one(e);
    EXPECT_FALSE(v.event) << expected;
    EXPECT_EQ(v.error.rfind(expected, 0), 0u) << v.error;
    EXPECT_EQ(v.attribute, expected.substr(0, expected.find(':'))) << v.error;
  }
}

TEST(CloudEventStructured, DataKeepsItsNumbersAndItsLimits) {
  const std::string text =
      R"({"specversion":"1.0","id":"1","source":"s","type":"t","data":{"n":1e400,"m":0.10}})";
  const PublishBody body = parse_structured(text, false, {}, kReceived);
  ASSERT_TRUE(body.verdicts.at(0).event) << body.verdicts.at(0).error;
  EXPECT_EQ(body.verdicts[0].event->payload_json, R"({"n":1e400,"m":0.10})");
  const PublishBody twice = parse_structured(
      R"({"specversion":"1.0","id":"1","source":"s","type":"t","data":{"a":1,"a":2}})", false, {},
      kReceived);
  EXPECT_EQ(twice.verdicts.at(0).attribute, "data") << twice.verdicts[0].error;
  ValidationLimits small;
  small.max_payload_bytes = 8;
  json e = valid();
  e["data"] = {{"text", "longer than eight bytes"}};
  const PublishBody big = parse_structured(e.dump(), false, small, kReceived);
  EXPECT_EQ(big.verdicts.at(0).error.rfind("data: larger than max_payload_bytes", 0), 0u);
}

TEST(CloudEventStructured, ShapesOfTheBody) {
  EXPECT_EQ(parse_structured("[]", false, {}, kReceived).error->kind, BodyErrorKind::kWrongShape);
  EXPECT_EQ(parse_structured("{}", true, {}, kReceived).error->kind, BodyErrorKind::kWrongShape);
  EXPECT_EQ(parse_structured("[]", true, {}, kReceived).error->kind, BodyErrorKind::kWrongShape);
  EXPECT_EQ(parse_structured("{", false, {}, kReceived).error->kind, BodyErrorKind::kMalformedJson);
  ValidationLimits limits;
  limits.max_events_per_request = 2;
  const std::string three = json::array({valid(), valid(), valid()}).dump();
  EXPECT_EQ(parse_structured(three, true, limits, kReceived).error->kind,
            BodyErrorKind::kTooManyEvents);
}

TEST(CloudEventBatch, EachEventIsJudgedAlone) {
  json bad = valid();
  bad.erase("type");
  json other = valid();
  other["id"] = "B";
  other["data"] = {{"n", 1}};
  const PublishBody body =
      parse_structured(json::array({valid(), bad, 7, other}).dump(), true, {}, kReceived);
  ASSERT_FALSE(body.error);
  ASSERT_EQ(body.verdicts.size(), 4u);
  EXPECT_TRUE(body.verdicts[0].event);
  EXPECT_EQ(body.verdicts[1].error, "type: is required");
  EXPECT_EQ(body.verdicts[2].error, "event: must be a JSON object");
  ASSERT_TRUE(body.verdicts[3].event) << body.verdicts[3].error;
  EXPECT_EQ(body.verdicts[3].event->payload_json, R"({"n":1})");
  EXPECT_EQ(body.verdicts[3].index, 3u);
}

std::vector<std::pair<std::string, std::string>> headers() {
  return {{"specversion", "1.0"},
          {"id", "b-1"},
          {"source", "/sensors/7"},
          {"type", "sensor.reading"},
          {"time", "2026-11-24T10:00:00Z"}};
}

TEST(CloudEventBinary, TheBodyIsTheData) {
  const PublishBody body = parse_binary(headers(), " {\"t\": 21.50}\n", {}, kReceived);
  ASSERT_TRUE(body.verdicts.at(0).event) << body.verdicts[0].error;
  const Event& event = *body.verdicts[0].event;
  EXPECT_EQ(event.payload_json, R"({"t": 21.50})");
  EXPECT_EQ(event.event_id, "ce:10:/sensors/7:b-1");
  EXPECT_EQ(event.topic, "sensor.reading");
  EXPECT_EQ(parse_binary(headers(), "", {}, kReceived).verdicts.at(0).event->payload_json, "{}");
}

TEST(CloudEventBinary, ErrorsNameTheAttribute) {
  auto repeated = headers();
  repeated.emplace_back("id", "b-2");
  EXPECT_EQ(parse_binary(repeated, "{}", {}, kReceived).verdicts.at(0).error,
            "id: given more than once (header ce-id)");
  auto missing = headers();
  missing.erase(missing.begin());
  EXPECT_EQ(parse_binary(missing, "{}", {}, kReceived).verdicts.at(0).error,
            "specversion: is required");
  const auto malformed = parse_binary(headers(), "{nope", {}, kReceived).verdicts.at(0);
  EXPECT_EQ(malformed.attribute, "data");
  EXPECT_EQ(malformed.error.rfind("data: malformed JSON", 0), 0u) << malformed.error;
  EXPECT_EQ(parse_binary(headers(), "[1]", {}, kReceived)
                .verdicts.at(0)
                .error.rfind("data: must be a JSON object", 0),
            0u);
  EXPECT_EQ(parse_binary(headers(), R"({"a":1,"a":1})", {}, kReceived).verdicts.at(0).attribute,
            "data");
  auto control = headers();
  control[2].second = "bad\x01source";
  EXPECT_EQ(parse_binary(control, "{}", {}, kReceived).verdicts.at(0).error,
            "source: must not contain control characters");
}

TEST(CloudEventMediaType, OnlyJson) {
  for (const char* yes : {"application/json", "APPLICATION/JSON; charset=utf-8",
                          "application/cloudevents+json", "text/vnd.x+json"}) {
    EXPECT_TRUE(is_json_media_type(yes)) << yes;
  }
  for (const char* no : {"", "text/plain", "application/octet-stream", "+json", "json"}) {
    EXPECT_FALSE(is_json_media_type(no)) << no;
  }
}

}  // namespace
}  // namespace pipeline::cloudevents
