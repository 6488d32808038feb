// Robustness, input and limits: invalid UTF-8, failed authentication,
// payload numbers, the connection limit, Expect: 100-continue, SIGTERM.
// See robustness_harness.hpp.
#include "robustness_harness.hpp"

namespace testsupport {
namespace {

// Invalid UTF-8 in a body was a plain-text 500 that left the in-flight
// gauge one higher for good. Now: a JSON 400, counted, the gauge back at 0.
TEST_F(Robustness, InvalidUtf8IsAJson400AndEveryRequestIsCounted) {
  start_ingest();
  for (const std::string& body : {std::string("\xe9"), std::string("{\"topic\":\"\xff\xfe\"}"),
                                  std::string("[1, \xc3\x28]")}) {
    RawConnection c(port_);
    ASSERT_TRUE(c.send(post(body)));
    const auto response = c.read();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 400);
    EXPECT_TRUE(is_json(response->body)) << response->body;
  }
  const HttpResponse metrics = HttpClient(port_).get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  // The /metrics request itself is the one in flight.
  EXPECT_NE(metrics.body.find("pipeline_http_requests_in_flight 1\n"), std::string::npos)
      << "in-flight gauge not back down";
  EXPECT_NE(metrics.body.find(R"(pipeline_http_requests_total{code="400",route="/publish"} 3)"),
            std::string::npos);
}

// Failed authentications count against the client's address (429 past
// INGEST_AUTH_FAILURE_RATE); the scheme name is case-insensitive (RFC 9110).
TEST_F(Robustness, FailedAuthenticationIsRateLimited) {
  start_ingest({"INGEST_API_TOKENS=right-token", "INGEST_AUTH_FAILURE_RATE=5",
                "INGEST_AUTH_FAILURE_BURST=10"});
  HttpClient client(port_);
  int unauthorized = 0;
  int limited = 0;
  for (int i = 0; i < 60; ++i) {
    const HttpResponse r = client.request("GET", "/stats", "", "",
                                          {{"Authorization", "Bearer wrong-" + std::to_string(i)}});
    if (r.status == 401) ++unauthorized;
    if (r.status == 429) {
      ++limited;
      EXPECT_FALSE(r.header("retry-after").empty());
    }
  }
  EXPECT_LE(unauthorized, 15);
  EXPECT_GE(limited, 40);
  // The right token, with the scheme in any case, is still served.
  EXPECT_EQ(
      client.request("GET", "/stats", "", "", {{"Authorization", "bearer right-token"}}).status,
      200);
  EXPECT_EQ(
      client.request("GET", "/stats", "", "", {{"Authorization", "BEARER right-token"}}).status,
      200);
}

// Numbers stay as sent (jsonb keeps arbitrary precision); what it cannot
// hold, and duplicate member names, are refused by name, alone.
TEST_F(Robustness, PayloadNumbersAreStoredExactly) {
  backend().start_processor();
  start_ingest();
  const std::string payload =
      R"({"big":18446744073709551616,"neg":-9223372036854775809,"tiny":1e-30,"huge":1e400})";
  HttpClient client(port_);
  // A topic of its own: json::accept (the check of the other tests) refuses
  // 1e400, which jsonb keeps.
  const std::string batch = "[" + event_json("exact", payload, "exact") + "," +
                            event_json("neg-zero", R"({"z":-0})", "exact") + "," +
                            R"({"topic":"robust","topic":"other","event_id":"dup","timestamp":)"
                            R"("2026-11-24T10:00:00Z","source":"s"}])";
  const HttpResponse response = client.post("/publish", batch);
  ASSERT_EQ(response.status, 200) << response.body;
  const json results = json::parse(response.body)["results"];
  EXPECT_EQ(results[0]["status"], "accepted");
  EXPECT_EQ(results[1]["status"], "rejected");
  EXPECT_NE(results[1]["error"].get<std::string>().find("negative zero"), std::string::npos);
  EXPECT_EQ(results[2]["status"], "rejected");
  EXPECT_NE(results[2]["error"].get<std::string>().find("duplicate member name \"topic\""),
            std::string::npos);
  std::string stored;
  ASSERT_TRUE(wait_until(
      [&] {
        pqxx::connection conn(backend().database_url());
        pqxx::nontransaction tx(conn);
        const auto rows = tx.exec(
            "SELECT payload::text FROM events WHERE topic = 'exact' AND event_id = 'exact'");
        if (rows.empty()) return false;
        stored = rows[0][0].as<std::string>();
        return true;
      },
      30s));
  EXPECT_NE(stored.find("18446744073709551616"), std::string::npos) << stored;
  EXPECT_NE(stored.find("-9223372036854775809"), std::string::npos) << stored;
  EXPECT_NE(stored.find("1" + std::string(400, '0')), std::string::npos) << "1e400 lost digits";
  const HttpResponse events = client.get("/events?topic=exact&limit=10");
  EXPECT_NE(events.body.find("18446744073709551616"), std::string::npos);
}

TEST_F(Robustness, ConnectionsBeyondTheLimitAreToldAndClosed) {
  start_ingest({"INGEST_MAX_CONNECTIONS=20", "INGEST_IDLE_TIMEOUT=30s"});  // fuzz uses 32
  std::vector<std::unique_ptr<RawConnection>> open;
  for (int i = 0; i < 20; ++i) {
    open.push_back(std::make_unique<RawConnection>(port_));
    ASSERT_TRUE(open.back()->send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(open.back()->read()) << i;
  }
  RawConnection extra(port_);
  const auto refused = extra.read(3s);
  ASSERT_TRUE(refused) << "the connection over the limit was not told";
  EXPECT_EQ(refused->status, 503);
  EXPECT_TRUE(is_json(refused->body));
  EXPECT_NE(refused->body.find("INGEST_MAX_CONNECTIONS"), std::string::npos);
  EXPECT_TRUE(extra.closed_by_server(3s));
  open.pop_back();  // room again
  EXPECT_TRUE(wait_until([&] { return HttpClient(port_, 1000).get("/health").status == 200; }, 5s));
}

// curl sends "Expect: 100-continue" for bodies over 1 KiB and waits a second
// for the 100 unless it comes.
TEST_F(Robustness, ExpectContinueIsAnsweredAtOnce) {
  start_ingest();
  std::string big = "[";
  for (int i = 0; i < 20; ++i) big += (i ? "," : "") + event_json("continue-" + std::to_string(i));
  big += "]";
  RawConnection c(port_);
  ASSERT_TRUE(
      c.send("POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Expect: 100-continue\r\nContent-Length: " +
             std::to_string(big.size()) + "\r\n\r\n"));
  const auto interim = c.read(500ms);
  ASSERT_TRUE(interim) << "no 100 Continue";
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(c.send(big));
  const auto response = c.read();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200) << response->body;
}

// SIGTERM while a client is stuck half-way through a request: the process
// still exits within its drain budget (2 x INGEST_PUBLISH_TIMEOUT + 3 s).
TEST_F(Robustness, SigtermExitsWithinItsBudgetWhateverTheClients) {
  start_ingest();
  RawConnection stuck(port_);
  ASSERT_TRUE(stuck.send("POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"));
  RawConnection spinning(port_);
  ASSERT_TRUE(spinning.send(
      "POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r"));
  std::this_thread::sleep_for(200ms);
  const auto t0 = std::chrono::steady_clock::now();
  const int status = ingest_.stop(SIGTERM, 20s);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_LT(took, 7s + 1s);
}

}  // namespace
}  // namespace testsupport
