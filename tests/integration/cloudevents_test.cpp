// CloudEvents end to end: the three modes of the HTTP binding stored as the
// mapping says, a producer's retry a duplicate in any mode, and GET /events
// and GET /subscribe answering CloudEvents when asked.
#include <pqxx/pqxx>
#include <string>

#include "compression.hpp"
#include "pipeline/cloudevents.hpp"
#include "pipeline_fixture.hpp"
#include "sse_client.hpp"

namespace testsupport {
namespace {

using nlohmann::json;

constexpr const char* kStructured = "application/cloudevents+json";
constexpr const char* kBatch = "application/cloudevents-batch+json";

json cloudevent(const std::string& id, const std::string& type = "com.example.order.created",
                const std::string& source = "https://example.com/shop") {
  return {{"specversion", "1.0"},
          {"id", id},
          {"source", source},
          {"type", type},
          {"time", "2026-11-24T10:00:00.5+01:00"},
          {"datacontenttype", "application/json"},
          {"data", {{"order", id}, {"amount", 42}}}};
}

class CloudEvents : public PipelineTest {
 protected:
  void SetUp() override {
    PipelineTest::SetUp();
    start_all();
  }
  // The stored row of a key, as text: topic|source|timestamp|payload.
  std::string row(const std::string& event_id) {
    pqxx::connection conn(shared_postgres().url(database_));
    pqxx::read_transaction tx(conn);
    const auto rows = tx.exec(
        "SELECT topic || '|' || source || '|' || to_char(ts AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '|' || payload::text FROM events WHERE event_id = " +
        tx.quote(event_id));
    return rows.empty() ? "" : rows[0][0].as<std::string>();
  }
};

std::string status_of(const HttpResponse& response, std::size_t index = 0) {
  const json body = json::parse(response.body);
  return body.contains("results") ? body["results"][index]["status"].get<std::string>()
                                  : "error: " + body["error"].get<std::string>();
}

TEST_F(CloudEvents, StructuredEventsAreStoredAsTheMappingSaysAndRetriesAreDuplicates) {
  const HttpResponse first = post(cloudevent("o-1").dump(), kStructured);
  ASSERT_EQ(first.status, 200) << first.body;
  const std::string key = "ce:24:https://example.com/shop:o-1";
  EXPECT_EQ(json::parse(first.body)["results"][0]["event_id"], key);
  EXPECT_EQ(json::parse(first.body)["results"][0]["topic"], "com.example.order.created");
  // The producer's retry, with other data: a duplicate, first write wins.
  json retry = cloudevent("o-1");
  retry["data"]["amount"] = 99;
  EXPECT_EQ(status_of(post(retry.dump(), kStructured)), "duplicate");
  // The same id from another source is another event; so is the same
  // source and id with another type (another topic: see the README).
  EXPECT_EQ(status_of(post(
                cloudevent("o-1", "com.example.order.created", "https://example.com/other").dump(),
                kStructured)),
            "accepted");
  EXPECT_EQ(status_of(post(cloudevent("o-1", "com.example.order.paid").dump(), kStructured)),
            "accepted");
  wait_for_idle(3);
  EXPECT_EQ(row(key),
            "com.example.order.created|https://example.com/shop|2026-11-24T09:00:00.500000|"
            R"({"order": "o-1", "amount": 42})");
  EXPECT_EQ(count_rows(), 3);
  EXPECT_EQ(stats()["duplicate_dropped"], 1);
}

TEST_F(CloudEvents, BatchEventsAreJudgedAloneWithTheAttributeNamed) {
  json no_type = cloudevent("b-2");
  no_type.erase("type");
  json base64 = cloudevent("b-3");
  base64.erase("data");
  base64["data_base64"] = "AAEC";
  json untimed = cloudevent("b-4");
  untimed.erase("time");
  const HttpResponse response =
      post(json::array({cloudevent("b-1"), no_type, base64, untimed}).dump(), kBatch);
  ASSERT_EQ(response.status, 200) << response.body;
  const json report = json::parse(response.body);
  EXPECT_EQ(report["accepted"], 2);
  EXPECT_EQ(report["results"][1]["field"], "type");
  EXPECT_EQ(report["results"][1]["error"], "type: is required");
  EXPECT_EQ(report["results"][2]["field"], "data_base64");
  wait_for_idle(2);
  // No time: the time ingest read it, which is about now.
  EXPECT_EQ(count_rows("event_id LIKE '%:b-4' AND ts > now() - interval '1 minute'"), 1);
}

TEST_F(CloudEvents, BinaryModeReadsTheCeHeadersAndARetryInAnyModeIsADuplicate) {
  const std::map<std::string, std::string> headers = {
      {"CE-SpecVersion", "1.0"},           {"ce-id", "bin-1"},
      {"Ce-Source", "/sensors/room%207"},  {"ce-type", "sensor.reading"},
      {"ce-time", "2026-11-24T10:00:00Z"}, {"ce-subject", "not stored"}};
  const HttpResponse first = post(R"({"celsius": 21.50})", "application/json", headers);
  ASSERT_EQ(first.status, 200) << first.body;
  const std::string key = "ce:15:/sensors/room 7:bin-1";
  EXPECT_EQ(json::parse(first.body)["results"][0]["event_id"], key);
  EXPECT_EQ(status_of(post("{}", "application/json", headers)), "duplicate");
  // The same event in structured mode, compressed: still the same event.
  const json structured = cloudevent("bin-1", "sensor.reading", "/sensors/room 7");
  EXPECT_EQ(
      status_of(post(compress(structured.dump()), kStructured, {{"Content-Encoding", "gzip"}})),
      "duplicate");
  std::map<std::string, std::string> text = headers;
  text["ce-id"] = "bin-2";
  const HttpResponse refused = post("21.5", "text/plain", text);
  EXPECT_EQ(refused.status, 415);
  EXPECT_NE(refused.body.find("datacontenttype"), std::string::npos) << refused.body;
  std::map<std::string, std::string> untyped = text;
  untyped.erase("ce-type");
  const HttpResponse invalid = post("{}", "application/json", untyped);
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(json::parse(invalid.body)["results"][0]["error"], "type: is required");
  wait_for_idle(1);
  EXPECT_EQ(row(key),
            R"(sensor.reading|/sensors/room 7|2026-11-24T10:00:00.000000|{"celsius": 21.50})");
}

TEST_F(CloudEvents, BodiesOfTheWrongShapeAreJson400s) {
  HttpResponse response = post(json::array({cloudevent("x")}).dump(), kStructured);
  EXPECT_EQ(response.status, 400);
  EXPECT_NE(json::parse(response.body)["error"].get<std::string>().find("cloudevents-batch"),
            std::string::npos);
  response = post(cloudevent("x").dump(), kBatch);
  EXPECT_EQ(response.status, 400);
  response = post("{\"specversion\":", kStructured);
  EXPECT_EQ(response.status, 400);
  json old = cloudevent("x");
  old["specversion"] = "0.3";
  response = post(old.dump(), kStructured);
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(json::parse(response.body)["results"][0]["field"], "specversion");
}

TEST_F(CloudEvents, EventsAreReadBackAsCloudEventsWhenAsked) {
  ASSERT_EQ(post(cloudevent("r-1", "shop.order").dump(), kStructured).status, 200);
  json native = event("shop.order", "native-1", {{"n", 1}});
  ASSERT_EQ(publish(native).status, 200);
  wait_for_idle(2);
  const HttpResponse by_param = http().get("/events?topic=shop.order&format=cloudevents");
  ASSERT_EQ(by_param.status, 200) << by_param.body;
  const json page = json::parse(by_param.body);
  ASSERT_EQ(page["count"], 2);
  const json& first = page["events"][0];
  EXPECT_EQ(first["specversion"], "1.0");
  EXPECT_EQ(first["id"], "r-1") << "the CloudEvents id, not the key";
  EXPECT_EQ(first["source"], "https://example.com/shop");
  EXPECT_EQ(first["type"], "shop.order");
  EXPECT_EQ(first["time"], "2026-11-24T09:00:00.500000Z");
  EXPECT_EQ(first["data"], (json{{"order", "r-1"}, {"amount", 42}}));
  EXPECT_EQ(page["events"][1]["id"], "native-1");
  EXPECT_EQ(page["events"][1]["source"], "tests");
  const HttpResponse by_accept = http().request("GET", "/events?topic=shop.order", "", "",
                                                {{"Accept", "application/cloudevents+json"}});
  EXPECT_EQ(json::parse(by_accept.body), page);
  const HttpResponse explicit_json =
      http().request("GET", "/events?topic=shop.order&format=json", "", "",
                     {{"Accept", "application/cloudevents+json"}});
  EXPECT_EQ(json::parse(explicit_json.body)["events"][0]["event_id"],
            "ce:24:https://example.com/shop:r-1");
  EXPECT_EQ(http().get("/events?format=xml").status, 400);
}

TEST_F(CloudEvents, SubscriptionsStreamCloudEventsWhenAsked) {
  using namespace std::chrono_literals;
  SseClient by_param(ingest_->port(), "/subscribe?topic=shop.order&format=cloudevents");
  SseClient by_accept(ingest_->port(), "/subscribe?topic=shop.order",
                      {{"Accept", "application/cloudevents+json"}});
  SseClient native(ingest_->port(), "/subscribe?topic=shop.order");
  for (SseClient* client : {&by_param, &by_accept, &native}) {
    ASSERT_TRUE(wait_until([&] { return !client->raw().empty(); }, 10s)) << "stream opened";
  }
  ASSERT_EQ(post(cloudevent("s-1", "shop.order").dump(), kStructured).status, 200);
  // A payload number no double holds, to see its text kept as stored.
  ASSERT_EQ(post(R"({"topic":"shop.order","event_id":"native-2","timestamp":)"
                 R"("2026-11-24T09:00:00Z","source":"tests",)"
                 R"("payload":{"big":18446744073709551616}})",
                 "application/json")
                .status,
            200);
  for (SseClient* client : {&by_param, &by_accept, &native}) {
    ASSERT_TRUE(client->wait_for(2, 30s)) << client->events().size();
  }
  const auto events = by_param.events();
  const json first = json::parse(events[0].data);
  EXPECT_EQ(first["specversion"], "1.0");
  EXPECT_EQ(first["id"], "s-1") << "the CloudEvents id, not the key";
  EXPECT_EQ(first["source"], "https://example.com/shop");
  EXPECT_EQ(first["type"], "shop.order");
  EXPECT_EQ(first["time"], "2026-11-24T09:00:00.500000Z");
  EXPECT_EQ(first["data"], (json{{"order", "s-1"}, {"amount", 42}}));
  EXPECT_EQ(json::parse(events[1].data)["id"], "native-2");
  EXPECT_NE(events[1].data.find("18446744073709551616"), std::string::npos) << events[1].data;
  EXPECT_EQ(by_accept.events()[0].data, events[0].data);
  EXPECT_EQ(by_accept.events()[1].id, events[1].id);
  EXPECT_EQ(json::parse(native.events()[0].data)["event_id"], "ce:24:https://example.com/shop:s-1");
  EXPECT_EQ(http().get("/subscribe?format=xml").status, 400);
}

}  // namespace
}  // namespace testsupport
