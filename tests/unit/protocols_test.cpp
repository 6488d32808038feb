// The shipper protocols' decoders without servers: OTLP logs (protobuf and
// JSON read alike), Loki push (JSON, protobuf with snappy, the label syntax)
// and Elasticsearch bulk (actions, documents, the answer item by item).
#include <gtest/gtest.h>
#include <snappy.h>

#include <nlohmann/json.hpp>

#include "loki_push.pb.h"
#include "otlp_logs.pb.h"
#include "pipeline/timestamp.hpp"
#include "protocols/es_bulk.hpp"
#include "protocols/loki.hpp"
#include "protocols/otlp.hpp"

namespace ingest {
namespace {

using nlohmann::json;

const pipeline::ValidationLimits kLimits{};
constexpr std::int64_t kNow = 1'700'000'000'000'000;

// One record, in protobuf, with every kind of value.
std::string otlp_protobuf() {
  pipeline::otlp::ExportLogsServiceRequest request;
  auto* resource_logs = request.add_resource_logs();
  auto* service = resource_logs->mutable_resource()->add_attributes();
  service->set_key("service.name");
  service->mutable_value()->set_string_value("checkout service");
  auto* host = resource_logs->mutable_resource()->add_attributes();
  host->set_key("host.name");
  host->mutable_value()->set_string_value("web-1");
  auto* scope_logs = resource_logs->add_scope_logs();
  scope_logs->mutable_scope()->set_name("app");
  auto* log = scope_logs->add_log_records();
  log->set_time_unix_nano(1764842400123456789ULL);
  log->set_severity_number(9);
  log->set_severity_text("INFO");
  log->mutable_body()->set_string_value("order placed");
  auto* count = log->add_attributes();
  count->set_key("count");
  count->mutable_value()->set_int_value(-42);
  auto* ratio = log->add_attributes();
  ratio->set_key("ratio");
  ratio->mutable_value()->set_double_value(2);
  auto* raw = log->add_attributes();
  raw->set_key("raw");
  raw->mutable_value()->set_bytes_value(std::string("\x00\xff", 2));
  auto* list = log->add_attributes();
  list->set_key("list");
  list->mutable_value()->mutable_array_value()->add_values()->set_bool_value(true);
  log->set_trace_id(
      std::string("\x5b\x8e\xff\xf7\x98\x03\x81\x03\xd2\x69\xb6\x33\x81\x3f\xc6\x0c", 16));
  log->set_span_id(std::string("\xee\xe1\x9b\x7e\xc3\xc1\xb1\x74", 8));
  return request.SerializeAsString();
}

// The same record in OTLP's JSON encoding (upper-case hex, intValue as a
// string, one snake_case key).
constexpr const char* kOtlpJson = R"({"resourceLogs":[{"resource":{"attributes":[
  {"key":"service.name","value":{"stringValue":"checkout service"}},
  {"key":"host.name","value":{"stringValue":"web-1"}}]},
  "scopeLogs":[{"scope":{"name":"app"},"log_records":[{
  "timeUnixNano":"1764842400123456789","severityNumber":9,"severityText":"INFO",
  "body":{"stringValue":"order placed"},
  "attributes":[{"key":"count","value":{"intValue":"-42"}},{"key":"ratio","value":{"doubleValue":2}},
   {"key":"raw","value":{"bytesValue":"AP8="}},
   {"key":"list","value":{"arrayValue":{"values":[{"boolValue":true}]}}}],
  "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174"}]}]}]})";

TEST(Otlp, ProtobufAndJsonOfOneRecordAreOneEvent) {
  const otlp::Settings settings;
  const auto proto =
      otlp::decode(otlp_protobuf(), otlp::Encoding::kProtobuf, settings, kLimits, kNow);
  const auto json_body = otlp::decode(kOtlpJson, otlp::Encoding::kJson, settings, kLimits, kNow);
  ASSERT_FALSE(proto.error) << proto.error->message;
  ASSERT_FALSE(json_body.error) << json_body.error->message;
  ASSERT_EQ(proto.verdicts.size(), 1U);
  ASSERT_TRUE(proto.verdicts[0].event) << proto.verdicts[0].error;
  ASSERT_TRUE(json_body.verdicts[0].event) << json_body.verdicts[0].error;
  const pipeline::Event& a = *proto.verdicts[0].event;
  const pipeline::Event& b = *json_body.verdicts[0].event;
  EXPECT_EQ(a.payload_json, b.payload_json);
  EXPECT_EQ(a.event_id, b.event_id) << "the identity does not depend on the encoding";
  EXPECT_EQ(a.topic, "checkout_service");
  EXPECT_EQ(a.source, "web-1");
  EXPECT_EQ(a.timestamp, "2025-12-04T10:00:00.123456Z");
  EXPECT_EQ(a.event_id.rfind("otlp-", 0), 0U);
  const json payload = json::parse(a.payload_json);
  EXPECT_EQ(payload["body"], "order placed");
  EXPECT_EQ(payload["attributes"]["count"], -42);
  EXPECT_NE(a.payload_json.find("\"ratio\":2.0"), std::string::npos) << "a double stays a double";
  EXPECT_EQ(payload["attributes"]["raw"], "AP8=");
  EXPECT_EQ(payload["trace_id"], "5b8efff798038103d269b633813fc60c");
  EXPECT_EQ(payload["span_id"], "eee19b7ec3c1b174");
  EXPECT_EQ(payload["resource"]["service.name"], "checkout service");
}

TEST(Otlp, TheUidIsTheIdentityAndTimesFallBack) {
  const auto body = otlp::decode(
      R"({"resourceLogs":[{"scopeLogs":[{"logRecords":[
        {"observedTimeUnixNano":"1000","attributes":[{"key":"log.record.uid","value":{"stringValue":"u-1"}}]},
        {}]}]}]})",
      otlp::Encoding::kJson, {}, kLimits, kNow);
  ASSERT_FALSE(body.error);
  ASSERT_EQ(body.verdicts.size(), 2U);
  EXPECT_EQ(body.verdicts[0].event->event_id, "u-1");
  EXPECT_EQ(body.verdicts[0].event->topic, "unknown_service");
  EXPECT_EQ(body.verdicts[0].event->source, "otlp");
  EXPECT_EQ(body.verdicts[0].event->timestamp, "1970-01-01T00:00:00.000001Z");
  EXPECT_EQ(body.verdicts[1].event->timestamp, pipeline::format_rfc3339({kNow}));
}

TEST(Otlp, WhatIsNoExportRequestIsABodyError) {
  for (const char* bad :
       {"[]", "{\"resourceLogs\":{}}",
        R"({"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"xyz"}]}]}]})",
        R"({"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"-5"}]}]}]})"}) {
    const auto body = otlp::decode(bad, otlp::Encoding::kJson, {}, kLimits, kNow);
    EXPECT_TRUE(body.error) << bad;
  }
  EXPECT_TRUE(
      otlp::decode(std::string("\xff\x01", 2), otlp::Encoding::kProtobuf, {}, kLimits, kNow).error);
  pipeline::ValidationLimits two = kLimits;
  two.max_events_per_request = 2;
  const auto many = otlp::decode(R"({"resourceLogs":[{"scopeLogs":[{"logRecords":[{},{},{}]}]}]})",
                                 otlp::Encoding::kJson, {}, two, kNow);
  ASSERT_TRUE(many.error);
  EXPECT_EQ(many.error->kind, pipeline::BodyErrorKind::kTooManyEvents);
}

TEST(Otlp, PartialSuccessIsOtlpsOwnShape) {
  EXPECT_EQ(otlp::success_body(otlp::Encoding::kJson, 0, ""), "{}");
  EXPECT_EQ(otlp::success_body(otlp::Encoding::kJson, 2, "bad"),
            R"({"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"bad"}})");
  pipeline::otlp::ExportLogsServiceResponse response;
  ASSERT_TRUE(response.ParseFromString(otlp::success_body(otlp::Encoding::kProtobuf, 3, "x")));
  EXPECT_EQ(response.partial_success().rejected_log_records(), 3);
}

TEST(LokiLabels, PrometheusSyntaxWithItsQuotesAndEscapes) {
  std::vector<std::pair<std::string, std::string>> labels;
  std::string error;
  ASSERT_TRUE(loki::parse_labels(R"({job="api", host='h\'1', path=`a\b`, empty="", q="a\"b\n"})",
                                 &labels, &error))
      << error;
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"host", "h'1"}, {"job", "api"}, {"path", "a\\b"}, {"q", "a\"b\n"}};
  EXPECT_EQ(labels, expected) << "sorted, empty dropped";
  for (const char* bad : {"job=\"x\"", "{job=x}", "{job=\"x\"", "{job=\"x\" host=\"y\"}",
                          "{a=\"1\", a=\"2\"}", "{9a=\"x\"}"}) {
    EXPECT_FALSE(loki::parse_labels(bad, &labels, &error)) << bad;
  }
}

TEST(Loki, JsonAndProtobufOfOneEntryAreOneEvent) {
  const char* json_body = R"({"streams":[{"stream":{"service_name":"api","host":"h1"},
    "values":[["1764842400000000001","GET / 200",{"trace_id":"t1"}]]}]})";
  pipeline::loki::PushRequest request;
  auto* stream = request.add_streams();
  stream->set_labels(R"({host="h1", service_name="api"})");
  auto* entry = stream->add_entries();
  entry->mutable_timestamp()->set_seconds(1764842400);
  entry->mutable_timestamp()->set_nanos(1);
  entry->set_line("GET / 200");
  auto* meta = entry->add_structured_metadata();
  meta->set_name("trace_id");
  meta->set_value("t1");
  std::string compressed;
  snappy::Compress(request.SerializeAsString().data(), request.ByteSizeLong(), &compressed);
  const auto a = loki::decode(json_body, loki::Encoding::kJson, {}, kLimits, 1 << 20);
  const auto b = loki::decode(compressed, loki::Encoding::kProtobufSnappy, {}, kLimits, 1 << 20);
  ASSERT_FALSE(a.error);
  ASSERT_FALSE(b.error) << b.error->message;
  ASSERT_TRUE(a.verdicts.at(0).event);
  ASSERT_TRUE(b.verdicts.at(0).event);
  EXPECT_EQ(a.verdicts[0].event->payload_json, b.verdicts[0].event->payload_json);
  EXPECT_EQ(a.verdicts[0].event->event_id, b.verdicts[0].event->event_id);
  EXPECT_EQ(a.verdicts[0].event->topic, "api");
  EXPECT_EQ(a.verdicts[0].event->source, "h1");
  EXPECT_EQ(json::parse(a.verdicts[0].event->payload_json)["structured_metadata"]["trace_id"],
            "t1");
}

TEST(Loki, NotSnappyOrTooLargeOrMalformedIsABodyError) {
  EXPECT_TRUE(loki::decode("plain", loki::Encoding::kProtobufSnappy, {}, kLimits, 1 << 20).error);
  const std::string zeros(1 << 20, '\0');
  std::string bomb;
  snappy::Compress(zeros.data(), zeros.size(), &bomb);
  const auto large = loki::decode(bomb, loki::Encoding::kProtobufSnappy, {}, kLimits, 65536);
  ASSERT_TRUE(large.error);
  EXPECT_EQ(large.error->kind, pipeline::BodyErrorKind::kTooLarge);
  for (const char* bad : {R"({"streams":{}})", R"({"streams":[{"stream":{"a":1},"values":[]}]})",
                          R"({"streams":[{"stream":{"a":"b"},"values":[[1,"x"]]}]})"}) {
    EXPECT_TRUE(loki::decode(bad, loki::Encoding::kJson, {}, kLimits, 1 << 20).error) << bad;
  }
}

}  // namespace
}  // namespace ingest
