// Robustness, framing and connections: split and chunked bodies, pipelining,
// persistence and closing, idle and unread connections, ambiguous framing,
// huge request lines. See robustness_harness.hpp.
#include "robustness_harness.hpp"

namespace testsupport {
namespace {

// Issue 12's 70-byte request: a chunked body whose segments split between
// the CR and the LF after the chunk data spun Pistache's parser at 100% CPU
// forever and the request was never answered.
TEST_F(Robustness, ChunkedBodySplitBetweenCrAndLfIsAnswered) {
  start_ingest();
  RawConnection c(port_);
  ASSERT_TRUE(
      c.send("POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r"));
  std::this_thread::sleep_for(300ms);  // the point: the rest comes in a second segment
  ASSERT_TRUE(c.send("\n0\r\n\r\n"));
  const auto response = c.read(3s);
  ASSERT_TRUE(response) << "no answer";
  EXPECT_EQ(response->status, 400);  // {} is not an event
  EXPECT_TRUE(is_json(response->body)) << response->body;
  EXPECT_LT(cpu_while_idle(), 0.2) << "ingest keeps burning CPU";
  expect_healthy();
}

TEST_F(Robustness, AThousandOneByteChunksAreAnswered) {
  start_ingest();
  const std::string body = event_json("chunks");
  std::string request = "POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const char c : body) request += std::string("1\r\n") + c + "\r\n";
  for (std::size_t pad = body.size(); pad < 1000; ++pad) request += "1\r\n \r\n";
  request += "0\r\n\r\n";
  RawConnection c(port_);
  for (std::size_t i = 0; i < request.size(); i += 7) {  // in small segments
    ASSERT_TRUE(c.send(request.substr(i, 7)));
  }
  const auto response = c.read(3s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200) << response->body;
  EXPECT_LT(cpu_while_idle(), 0.2);
}

// Two POSTs and a GET in one write: three answers, in order (the second
// used to be dropped, never answered and never stored).
TEST_F(Robustness, PipelinedRequestsAreAllAnsweredInOrder) {
  start_ingest();
  RawConnection c(port_);
  ASSERT_TRUE(c.send(post(event_json("pipe-1")) + post(event_json("pipe-2")) +
                     "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + post("not json")));
  for (const char* id : {"pipe-1", "pipe-2"}) {
    const auto response = c.read();
    ASSERT_TRUE(response) << id;
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(json::parse(response->body)["results"][0]["event_id"], id);
  }
  auto health = c.read();
  ASSERT_TRUE(health);
  EXPECT_EQ(health->body, R"({"status":"ok"})");
  auto bad = c.read();
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

// HTTP/1.1 keeps the connection unless a side says otherwise (RFC 9112
// §9.3): no Connection header means keep-alive; the client's "close" and an
// HTTP/1.0 request without keep-alive end it after the response.
TEST_F(Robustness, ConnectionsPersistAndCloseAsTheClientSays) {
  start_ingest();
  {
    RawConnection c(port_);
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
      const auto response = c.read();
      ASSERT_TRUE(response) << i;
      EXPECT_EQ(response->header("connection"), "") << "no Connection: close by default";
    }
  }
  {
    RawConnection c(port_);
    ASSERT_TRUE(c.send("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    const auto response = c.read();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->header("connection"), "close");
    EXPECT_TRUE(c.closed_by_server(2s));
  }
  {
    RawConnection c(port_);
    ASSERT_TRUE(c.send("GET /health HTTP/1.0\r\n\r\n"));
    ASSERT_TRUE(c.read());
    EXPECT_TRUE(c.closed_by_server(2s)) << "HTTP/1.0 without keep-alive must be closed";
  }
  {
    RawConnection c(port_);
    ASSERT_TRUE(c.send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    const auto response = c.read();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->header("connection"), "keep-alive");
    ASSERT_TRUE(c.send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    EXPECT_TRUE(c.read());
  }
}

TEST_F(Robustness, StandardClientsReuseTheirConnection) {
  start_ingest();
  const std::string url = "http://127.0.0.1:" + std::to_string(port_);
  // curl: two requests on one command line share a connection when the
  // server keeps it.
  const auto [curl_status, curl_out] = run("curl -sv " + url + "/health " + url + "/health 2>&1");
  ASSERT_EQ(curl_status, 0) << curl_out;
  EXPECT_NE(curl_out.find("Re-using existing connection"), std::string::npos) << curl_out;
  EXPECT_EQ(curl_out.find("Connection: close"), std::string::npos) << curl_out;
  // Python's http.client: one connection, five requests, the socket kept.
  const std::string python =
      "import http.client,sys\n"
      "c=http.client.HTTPConnection('127.0.0.1'," +
      std::to_string(port_) +
      ")\n"
      "socks=set()\n"
      "for i in range(5):\n"
      "  c.request('GET','/health'); r=c.getresponse(); r.read(); socks.add(id(c.sock))\n"
      "  assert r.status==200 and not r.will_close, (r.status, r.will_close)\n"
      "print(len(socks))\n";
  std::ofstream("/tmp/robust_client.py") << python;
  const auto [py_status, py_out] = run("python3 /tmp/robust_client.py 2>&1");
  EXPECT_EQ(py_status, 0) << py_out;
  EXPECT_EQ(py_out, "1\n") << "Python opened more than one connection";
}

TEST_F(Robustness, IdleConnectionsAreClosedAfterTheIdleTimeout) {
  start_ingest();
  RawConnection c(port_);
  ASSERT_TRUE(c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(c.read());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_by_server(5s));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 900ms);  // INGEST_IDLE_TIMEOUT=1s
  EXPECT_LT(waited, 3s);
}

// A client that sends requests and never reads the answers is cut off after
// INGEST_WRITE_TIMEOUT; nobody else notices.
TEST_F(Robustness, AClientThatNeverReadsIsCutOff) {
  start_ingest();
  RawConnection c(port_);
  std::string requests;
  for (int i = 0; i < 200; ++i) requests += "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(c.send(requests));
  std::this_thread::sleep_for(500ms);  // the point: the answers pile up unread
  expect_healthy();
  EXPECT_LT(cpu_while_idle(), 0.2) << "a thread spins on the unread answers";
  EXPECT_TRUE(c.closed_by_server(5s));
}

// Framing that a proxy and this server could read differently is refused
// (400, or 501 for an encoding it does not implement), in JSON, and the
// connection closed: request smuggling has nothing to work with.
TEST_F(Robustness, AmbiguousFramingIsRefused) {
  start_ingest();
  const std::string body = event_json("framing");
  const std::string length = std::to_string(body.size());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"two Content-Lengths", "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: " + length +
                                  "\r\nContent-Length: 5\r\n\r\n" + body},
      {"chunked then identity",
       "POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, "
       "identity\r\n\r\n0\r\n\r\n"},
      {"space before the colon",
       "POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: " +
           length + "\r\n\r\n" + body},
      {"folded header",
       "POST /publish HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\nContent-Length: " + length +
           "\r\n\r\n" + body},
      {"no Host", "POST /publish HTTP/1.1\r\nContent-Length: " + length + "\r\n\r\n" + body},
      {"two Hosts", "GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
      {"Content-Length -1", "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"},
      {"Content-Length 2^64",
       "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n"},
      {"Content-Length with Transfer-Encoding",
       "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: "
       "chunked\r\n\r\n"
       "0\r\n\r\n"},
      {"bare LF", "GET /health HTTP/1.1\nHost: x\n\n"},
      {"gzip transfer coding",
       "POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"},
      {"HTTP/2.0 request line", "GET /health HTTP/2.0\r\nHost: x\r\n\r\n"},
  };
  for (const auto& [name, bytes] : cases) {
    RawConnection c(port_);
    ASSERT_TRUE(c.send(bytes));
    const auto response = c.read(3s);
    ASSERT_TRUE(response) << name << ": no answer";
    EXPECT_TRUE(response->status == 400 || response->status == 501 || response->status == 505)
        << name << ": " << response->status;
    EXPECT_TRUE(is_json(response->body)) << name << ": " << response->body;
    EXPECT_EQ(response->header("connection"), "close") << name;
    EXPECT_TRUE(c.closed_by_server(3s)) << name;
  }
  expect_healthy();
}

// A 1 MiB target cost Pistache 1.6 s of CPU (its parser re-read the line
// from the start with each segment); now it is 414 at once, and an oversized
// header section 431.
TEST_F(Robustness, HugeRequestLinesAndHeadersAreRefusedCheaply) {
  start_ingest();
  const double before = cpu_seconds(ingest_.pid());
  {
    RawConnection c(port_);
    const std::string target = "/health?" + std::string(std::size_t{1} << 20, 'a');
    const std::string request = "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n";
    for (std::size_t i = 0; i < request.size(); i += 1400) c.send(request.substr(i, 1400));
    const auto response = c.read();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 414);
    EXPECT_TRUE(is_json(response->body));
  }
  {
    RawConnection c(port_);
    std::string request = "GET /health HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 2000; ++i) request += "X-Filler-" + std::to_string(i) + ": abcdefghij\r\n";
    c.send(request + "\r\n");
    const auto response = c.read();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 431);
    EXPECT_TRUE(is_json(response->body));
  }
  EXPECT_LT(cpu_seconds(ingest_.pid()) - before, 0.3) << "refusing cost too much CPU";
}

}  // namespace
}  // namespace testsupport
