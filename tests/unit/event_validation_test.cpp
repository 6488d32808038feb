#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "pipeline/event.hpp"
#include "pipeline/json_text.hpp"

namespace pipeline {
namespace {

using nlohmann::json;

json valid_event() {
  return json{{"topic", "orders.created"},
              {"event_id", "evt-1"},
              {"timestamp", "2026-11-24T10:00:00Z"},
              {"source", "checkout"},
              {"payload", {{"amount", 42}}}};
}

EventVerdict verdict_for(const json& event, ValidationLimits limits = {}) {
  PublishBody body = parse_publish_body(event.dump(), limits);
  EXPECT_FALSE(body.error) << body.error->message;
  EXPECT_EQ(body.verdicts.size(), 1u);
  return body.verdicts.at(0);
}

std::string error_for(const json& event, ValidationLimits limits = {}) {
  return verdict_for(event, limits).error;
}

TEST(PublishBody, AcceptsSingleObjectArrayAndEventsEnvelope) {
  const json e = valid_event();
  EXPECT_EQ(parse_publish_body(e.dump(), {}).verdicts.size(), 1u);
  EXPECT_EQ(parse_publish_body(json::array({e, e}).dump(), {}).verdicts.size(), 2u);
  EXPECT_EQ(parse_publish_body(json{{"events", json::array({e, e, e})}}.dump(), {}).verdicts.size(),
            3u);
}

TEST(PublishBody, NormalisesTheEvent) {
  json e = valid_event();
  e["timestamp"] = "2026-11-24T12:00:00+02:00";
  e["unknown_field"] = "ignored";
  const EventVerdict v = verdict_for(e);
  ASSERT_TRUE(v.event) << v.error;
  EXPECT_EQ(v.event->timestamp, "2026-11-24T10:00:00.000000Z");
  EXPECT_EQ(v.event->payload_json, R"({"amount":42})");
  EXPECT_EQ(v.event->message_id(), "orders.created:evt-1");
}

TEST(PublishBody, PayloadDefaultsToEmptyObject) {
  json e = valid_event();
  e.erase("payload");
  const EventVerdict v = verdict_for(e);
  ASSERT_TRUE(v.event) << v.error;
  EXPECT_EQ(v.event->payload_json, "{}");
}

TEST(PublishBody, BodyErrors) {
  EXPECT_EQ(parse_publish_body("{not json", {}).error->kind, BodyErrorKind::kMalformedJson);
  EXPECT_EQ(parse_publish_body("", {}).error->kind, BodyErrorKind::kMalformedJson);
  EXPECT_EQ(parse_publish_body("42", {}).error->kind, BodyErrorKind::kWrongShape);
  EXPECT_EQ(parse_publish_body("[]", {}).error->kind, BodyErrorKind::kWrongShape);
  EXPECT_EQ(parse_publish_body(R"({"events": {}})", {}).error->kind, BodyErrorKind::kWrongShape);
  // Invalid UTF-8 inside a string.
  EXPECT_EQ(parse_publish_body("{\"topic\": \"\xff\"}", {}).error->kind,
            BodyErrorKind::kMalformedJson);
  ValidationLimits limits;
  limits.max_events_per_request = 2;
  const json three = json::array({valid_event(), valid_event(), valid_event()});
  const auto too_many = parse_publish_body(three.dump(), limits).error;
  ASSERT_TRUE(too_many);
  EXPECT_EQ(too_many->kind, BodyErrorKind::kTooManyEvents);
  EXPECT_NE(too_many->message.find("max_events_per_request"), std::string::npos);
}

TEST(PublishBody, HostileNestingIsRefusedBeforeParsing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const auto error = parse_publish_body(deep, {}).error;
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind, BodyErrorKind::kTooDeep);
  EXPECT_NE(error->message.find("max_body_depth"), std::string::npos);
}

std::string nested_object(std::size_t depth) {
  std::string text;
  for (std::size_t i = 1; i < depth; ++i) text += "{\"a\":";
  text += "{}";
  for (std::size_t i = 1; i < depth; ++i) text += "}";
  return text;
}

TEST(PublishBody, APayloadOneLevelTooDeepIsRejectedAloneInEitherEnvelope) {
  ValidationLimits limits;  // max_json_depth 32
  json deep = valid_event();
  deep["payload"] = json::parse(nested_object(limits.max_json_depth + 1));
  json just_right = valid_event();
  just_right["payload"] = json::parse(nested_object(limits.max_json_depth));
  const json events = json::array({valid_event(), deep, just_right});
  for (const json& body : {events, json{{"events", events}}}) {
    const auto parsed = parse_publish_body(body.dump(), limits);
    ASSERT_FALSE(parsed.error) << parsed.error->message;
    ASSERT_EQ(parsed.verdicts.size(), 3u);
    EXPECT_TRUE(parsed.verdicts[0].event);
    EXPECT_FALSE(parsed.verdicts[1].event);
    EXPECT_NE(parsed.verdicts[1].error.find("max_json_depth"), std::string::npos);
    EXPECT_TRUE(parsed.verdicts[2].event) << parsed.verdicts[2].error;
  }
}

TEST(PublishBody, OneBadEventDoesNotHideItsNeighbours) {
  json bad = valid_event();
  bad["topic"] = "bad topic";
  const auto body = parse_publish_body(json::array({valid_event(), bad, valid_event()}).dump(), {});
  ASSERT_EQ(body.verdicts.size(), 3u);
  EXPECT_TRUE(body.verdicts[0].event);
  EXPECT_FALSE(body.verdicts[1].event);
  EXPECT_EQ(body.verdicts[1].topic, "bad topic");
  EXPECT_EQ(body.verdicts[1].index, 1u);
  EXPECT_TRUE(body.verdicts[2].event);
}

TEST(TopicRule, CharactersAndDotTokens) {
  for (const char* ok : {"a", "orders", "orders.created", "A-b_c.9", "x.y.z"}) {
    EXPECT_TRUE(is_valid_topic(ok)) << ok;
  }
  for (const char* bad : {"", ".a", "a.", "a..b", "a b", "a:b", "a*", "a>", "a/b", "é"}) {
    EXPECT_FALSE(is_valid_topic(bad)) << bad;
  }
  EXPECT_TRUE(is_valid_topic(std::string(255, 'a')));
  EXPECT_FALSE(is_valid_topic(std::string(256, 'a')));
}

// The rule of event_id and source, for text that did not pass the JSON
// parser (GET /events?source=...): well-formed, printable UTF-8.
TEST(TextRule, WellFormedPrintableUtf8WithinTheLength) {
  for (const char* ok : {"a", "checkout", "caf\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"}) {
    EXPECT_TRUE(is_valid_text(ok)) << ok;
  }
  for (const char* bad : {"", "\xFF", "a\x01", "\x7F", "\xC2\x85", "\xC0\xAF", "\xE0\x80\xAF",
                          "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82", "\x80"}) {
    EXPECT_FALSE(is_valid_text(bad)) << bad;
  }
  EXPECT_TRUE(is_valid_text(std::string(255, 'a')));
  EXPECT_FALSE(is_valid_text(std::string(256, 'a')));
  EXPECT_TRUE(is_valid_text(std::string(3, 'a'), 3));
}

TEST(EventRules, TopicIsRequiredAndChecked) {
  json e = valid_event();
  e.erase("topic");
  EXPECT_EQ(error_for(e), "topic: is required");
  e["topic"] = 5;
  EXPECT_EQ(error_for(e), "topic: must be a string");
  e["topic"] = "";
  EXPECT_EQ(error_for(e), "topic: must not be empty");
  e["topic"] = "orders:created";
  EXPECT_NE(error_for(e).find("[A-Za-z0-9._-]"), std::string::npos);
  e["topic"] = std::string(256, 'a');
  EXPECT_NE(error_for(e).find("max_field_length"), std::string::npos);
}

TEST(EventRules, EventIdIsPrintableUtf8UpToTheLimit) {
  json e = valid_event();
  e["event_id"] = "ünïcødé-✓";
  EXPECT_TRUE(verdict_for(e).event);
  e["event_id"] = std::string(255, 'x');
  EXPECT_TRUE(verdict_for(e).event);
  e["event_id"] = std::string(256, 'x');
  EXPECT_NE(error_for(e).find("event_id: longer than max_field_length"), std::string::npos);
  // 255 two-byte characters are 255 characters, not 510.
  std::string wide;
  for (int i = 0; i < 255; ++i) wide += "é";
  e["event_id"] = wide;
  EXPECT_TRUE(verdict_for(e).event);
  e["event_id"] = "tab\there";
  EXPECT_EQ(error_for(e), "event_id: must not contain control characters");
  e["event_id"] = std::string("nul\0x", 5);
  EXPECT_EQ(error_for(e), "event_id: must not contain control characters");
  e["event_id"] = "\xc2\x85";  // U+0085, a C1 control
  EXPECT_EQ(error_for(e), "event_id: must not contain control characters");
  e["event_id"] = 17;
  EXPECT_EQ(error_for(e), "event_id: must be a string");
}

TEST(EventRules, TimestampMustBeRfc3339WithZone) {
  json e = valid_event();
  e["timestamp"] = "2026-11-24T10:00:00";
  EXPECT_NE(error_for(e).find("timestamp: a time zone is required"), std::string::npos);
  e["timestamp"] = "2026-02-30T10:00:00Z";
  EXPECT_NE(error_for(e).find("timestamp: day does not exist"), std::string::npos);
  e.erase("timestamp");
  EXPECT_EQ(error_for(e), "timestamp: is required");
}

TEST(EventRules, SourceIsRequired) {
  json e = valid_event();
  e["source"] = "";
  EXPECT_EQ(error_for(e), "source: must not be empty");
  e.erase("source");
  EXPECT_EQ(error_for(e), "source: is required");
}

TEST(EventRules, PayloadMustBeAnObjectWithinLimits) {
  json e = valid_event();
  e["payload"] = json::array({1, 2});
  EXPECT_EQ(error_for(e), "payload: must be a JSON object");
  e["payload"] = nullptr;
  EXPECT_EQ(error_for(e), "payload: must be a JSON object");

  ValidationLimits limits;
  limits.max_payload_bytes = 32;
  e["payload"] = {{"text", std::string(40, 'x')}};
  EXPECT_NE(error_for(e, limits).find("max_payload_bytes (32 bytes)"), std::string::npos);

  limits = {};
  limits.max_json_depth = 3;
  e["payload"] = {{"a", {{"b", {{"c", 1}}}}}};  // depth 3
  EXPECT_TRUE(verdict_for(e, limits).event);
  e["payload"] = {{"a", {{"b", {{"c", {{"d", 1}}}}}}}};  // depth 4
  EXPECT_NE(error_for(e, limits).find("max_json_depth (3)"), std::string::npos);

  e["payload"] = {{"text", std::string("a\0b", 3)}};
  EXPECT_EQ(error_for(e), "payload: strings must not contain U+0000");
}

TEST(WireFormat, EncodeDecodeRoundTrip) {
  json e = valid_event();
  e["event_id"] = "quote\"back\\slash ✓";
  e["payload"] = {{"nested", {{"list", {1, "two", nullptr}}}}};
  const EventVerdict v = verdict_for(e);
  ASSERT_TRUE(v.event);
  std::string why;
  const auto decoded = decode_event(encode_event(*v.event), &why);
  ASSERT_TRUE(decoded) << why;
  EXPECT_EQ(decoded->topic, v.event->topic);
  EXPECT_EQ(decoded->event_id, v.event->event_id);
  EXPECT_EQ(decoded->timestamp, v.event->timestamp);
  EXPECT_EQ(decoded->source, v.event->source);
  EXPECT_EQ(decoded->payload_json, v.event->payload_json);
}

// A body with the text of an event whose payload is `payload_text`.
std::string event_text(const std::string& payload_text, const std::string& id = "1") {
  return R"({"topic":"t","event_id":")" + id +
         R"(","timestamp":"2026-11-24T10:00:00Z","source":"s","payload":)" + payload_text + "}";
}

// Numbers stay exactly as sent (the payload's own text travels; jsonb keeps
// it exact), through the wire format to the processor too.
TEST(PayloadFidelity, NumbersStayExact) {
  const std::string payload =
      R"({"big":18446744073709551616,"neg":-9223372036854775809,"tiny":1e-999,)"
      R"("huge":1e400,"pi":3.14159265358979323846264338327950288})";
  const PublishBody body = parse_publish_body(event_text(payload), {});
  ASSERT_FALSE(body.error);
  ASSERT_TRUE(body.verdicts[0].event) << body.verdicts[0].error;
  EXPECT_EQ(body.verdicts[0].event->payload_json, payload);
  std::string why;
  const auto decoded = decode_event(encode_event(*body.verdicts[0].event), &why);
  ASSERT_TRUE(decoded) << why;
  EXPECT_EQ(decoded->payload_json, payload);
}

// What PostgreSQL's numeric cannot hold exactly is refused with a clear
// error, alone: its neighbours are kept.
TEST(PayloadFidelity, NumbersJsonbCannotHoldAreRefusedAlone) {
  for (const std::string number : {"-0", "-0.0", "-0e5", "1e-99999", "1e200000"}) {
    const PublishBody body = parse_publish_body(
        "[" + event_text(R"({"x":)" + number + "}", "bad") + "," + event_text("{}", "good") + "]",
        {});
    ASSERT_FALSE(body.error) << number;
    EXPECT_FALSE(body.verdicts[0].event) << number;
    EXPECT_NE(body.verdicts[0].error.find("cannot be stored exactly"), std::string::npos)
        << number << ": " << body.verdicts[0].error;
    EXPECT_TRUE(body.verdicts[1].event) << number;
  }
  for (const std::string number : {"0", "0.0", "-1", "1e-16383", "1.5e131071", "1e400", "-2e400"}) {
    const PublishBody body = parse_publish_body(event_text(R"({"x":)" + number + "}"), {});
    EXPECT_TRUE(body.verdicts.at(0).event) << number << ": " << body.verdicts[0].error;
  }
}

// RFC 7493: each member name once per object. With duplicates the parser
// keeps the last one, topic included, so they are refused: in an event (its
// neighbours kept), in a payload at any depth, and in the envelope.
TEST(PayloadFidelity, DuplicateMemberNamesAreRefused) {
  const std::string twice_topic =
      R"({"topic":"a","topic":"b","event_id":"1","timestamp":"2026-11-24T10:00:00Z","source":"s"})";
  PublishBody body = parse_publish_body("[" + twice_topic + "," + event_text("{}") + "]", {});
  ASSERT_FALSE(body.error);
  EXPECT_FALSE(body.verdicts[0].event);
  EXPECT_EQ(body.verdicts[0].error,
            R"(event: duplicate member name "topic" (each name once per object, RFC 7493))");
  EXPECT_TRUE(body.verdicts[1].event);

  body = parse_publish_body(twice_topic, {});
  ASSERT_EQ(body.verdicts.size(), 1u);
  EXPECT_FALSE(body.verdicts[0].event);

  body = parse_publish_body(event_text(R"({"a":{"b":1,"b":2}})"), {});
  EXPECT_FALSE(body.verdicts[0].event);
  EXPECT_NE(body.verdicts[0].error.find(R"(duplicate member name "b")"), std::string::npos);

  body = parse_publish_body(R"({"events":[],"events":[)" + event_text("{}") + "]}", {});
  ASSERT_TRUE(body.error);
  EXPECT_NE(body.error->message.find("duplicate member name"), std::string::npos);
}

TEST(JsonText, EscapesAndAlwaysGivesValidJson) {
  const auto quoted = [](std::string_view text) {
    std::string out;
    append_json_string(out, text);
    return out;
  };
  EXPECT_EQ(quoted("plain"), R"("plain")");
  EXPECT_EQ(quoted("q\"b\\n\n\x01\x7f"), R"("q\"b\\n\n\u0001\u007f")");
  EXPECT_EQ(quoted("caf\xc3\xa9 \xe2\x9c\x93"), "\"caf\xc3\xa9 \xe2\x9c\x93\"");
  // Each ill-formed UTF-8 sequence (a lone byte, a cut sequence, a
  // surrogate) becomes one U+FFFD.
  EXPECT_EQ(quoted("a\xe9"
                   "b"),
            "\"a\xef\xbf\xbd"
            "b\"");
  EXPECT_EQ(quoted("\xe2\x9c"), "\"\xef\xbf\xbd\"");
  EXPECT_EQ(quoted("\xed\xa0\x80"), "\"\xef\xbf\xbd\"");
  EXPECT_EQ(quoted("\xc0\xaf!"), "\"\xef\xbf\xbd!\"") << "overlong";
  for (const char* text : {"\xff\xfe", "x\xc3", "\x1f"}) {
    EXPECT_TRUE(json::accept(quoted(text))) << quoted(text);
  }
}

TEST(WireFormat, DecodeRejectsGarbage) {
  std::string why;
  EXPECT_FALSE(decode_event("\x01\x02 not json", &why));
  EXPECT_FALSE(why.empty());
  EXPECT_FALSE(decode_event(R"([{"topic":"a"},{"topic":"b"}])", &why));
  EXPECT_FALSE(decode_event(R"({"topic":"a"})", &why));
}

}  // namespace
}  // namespace pipeline
