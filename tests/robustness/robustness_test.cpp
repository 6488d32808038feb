// The HTTP front door against clients it did not write and input nobody
// meant well: the real ingest executable (with a real nats-server,
// PostgreSQL and processor behind it) spoken to over raw sockets that split,
// pipeline and malform requests, by curl and by Python's http.client, and by
// a bounded fuzz run. Every answer must be JSON, never a 500; no request may
// hang a thread, burn a core or outlive the server's limits.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <random>
#include <sstream>
#include <thread>

#include "http_client.hpp"
#include "pipeline/database.hpp"
#include "servers.hpp"

namespace testsupport {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// One HTTP response as read off a raw socket.
struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// A raw TCP connection to 127.0.0.1: send bytes as they are, read responses
// (Content-Length framed, as this server writes them).
class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }
  bool send(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }
  void finish_sending() { ::shutdown(fd_, SHUT_WR); }

  // The next response, or nullopt when none came within `timeout` (or the
  // connection closed first).
  std::optional<RawResponse> read(std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t head_end = std::string::npos;
    while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(deadline)) return std::nullopt;
    }
    RawResponse response;
    std::istringstream head(buffer_.substr(0, head_end));
    std::string line;
    std::getline(head, line);
    if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12) return std::nullopt;
    response.status = std::stoi(line.substr(9, 3));
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      response.headers[name] = value;
    }
    buffer_.erase(0, head_end + 4);
    if (response.status == 100) return response;
    const std::size_t length = std::stoul(
        response.header("content-length").empty() ? "0" : response.header("content-length"));
    while (buffer_.size() < length) {
      if (!fill(deadline)) return std::nullopt;
    }
    response.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return response;
  }

  // True when the server closed the connection within `timeout` (reading
  // and dropping anything else it sends).
  bool closed_by_server(std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (fill(deadline)) {
    }
    return eof_;
  }

  std::string& buffer() { return buffer_; }

 private:
  bool fill(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || eof_) return false;
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return false;
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

std::string event_json(const std::string& id, const std::string& payload = "{}",
                       const std::string& topic = "robust") {
  return R"({"topic":")" + topic + R"(","event_id":")" + id +
         R"(","timestamp":"2026-11-24T10:00:00Z","source":"robustness","payload":)" + payload + "}";
}

std::string post(const std::string& body, const std::string& extra_headers = "") {
  return "POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Valid JSON (RFC 8259 sets no limit on numbers; nlohmann refuses those a
// double cannot hold, such as the 1e400 jsonb keeps: they are read as 0).
bool is_json(const std::string& body) {
  std::string text;
  for (std::size_t i = 0; i < body.size();) {
    const char c = body[i];
    if (c == '"') {
      const std::size_t start = i++;
      while (i < body.size() && body[i] != '"') i += body[i] == '\\' ? 2 : 1;
      text.append(body, start, ++i - start);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      const std::size_t start = i;
      while (i < body.size() && std::strchr("0123456789+-.eE", body[i]) != nullptr) ++i;
      const std::string number = body.substr(start, i - start);
      text += std::isinf(std::strtod(number.c_str(), nullptr)) ? "0" : number;
    } else {
      text += body[i++];
    }
  }
  return json::accept(text);
}

// CPU seconds a process has used (user + system), from /proc.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  std::getline(in, content);
  const auto close = content.rfind(')');
  std::istringstream fields(content.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// What a shell command printed, and its exit status.
std::pair<int, std::string> run(const std::string& command) {
  std::string out;
  // NOLINTNEXTLINE(cert-env33-c): a test runs a client it did not write
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, ""};
  std::array<char, 4096> chunk{};
  while (std::fgets(chunk.data(), static_cast<int>(chunk.size()), pipe) != nullptr)
    out += chunk.data();
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// The ingest executable under test: this build's, or another one named by
// ROBUSTNESS_INGEST_BINARY (to show what an older build fails).
std::string ingest_binary() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): read once, before any thread
  const char* other = std::getenv("ROBUSTNESS_INGEST_BINARY");
  return other != nullptr ? other : INGEST_BINARY;
}

// nats-server, PostgreSQL and a processor for the whole suite; each test
// starts the ingest it needs (its own settings) on them.
class Backend {
 public:
  Backend() {
    pqxx::connection conn(postgres_.url());
    pqxx::nontransaction tx(conn);
    tx.exec("CREATE DATABASE robust");
    // The schema, as a processor that ran before would have made it: the
    // cases start ingest first at times, and ingest never writes it.
    pqxx::connection db(postgres_.url("robust"));
    pipeline::db::apply_migrations(db);
  }
  std::vector<std::string> env(std::uint16_t port, const std::vector<std::string>& extra) const {
    std::vector<std::string> vars = {
        "NATS_URL=" + nats_.url(),       "DATABASE_URL=" + postgres_.url("robust"),
        "CONNECT_TIMEOUT=30s",           "LOG_LEVEL=warn",
        "INGEST_HTTP_ADDRESS=127.0.0.1", "INGEST_HTTP_PORT=" + std::to_string(port),
        "INGEST_PUBLISH_TIMEOUT=2s",     "PROCESSOR_METRICS_ADDRESS=off",
    };
    vars.insert(vars.end(), extra.begin(), extra.end());
    return vars;
  }
  void start_processor() {
    if (!processor_.running()) {
      processor_ = Process({PROCESSOR_BINARY}, logs_.path() + "/processor.log", env(0, {}));
    }
  }
  const std::string& logs() const { return logs_.path(); }
  std::string database_url() const { return postgres_.url("robust"); }

 private:
  TempDir logs_{"robustness-logs"};
  NatsServer nats_;
  PostgresCluster postgres_;
  Process processor_;
};

Backend& backend() {
  static Backend instance;
  return instance;
}

class Robustness : public ::testing::Test {
 protected:
  // Small limits, so each can be reached quickly.
  void start_ingest(const std::vector<std::string>& extra = {}) {
    port_ = free_port();
    std::vector<std::string> settings = {
        "INGEST_IDLE_TIMEOUT=1s", "INGEST_WRITE_TIMEOUT=1s",   "INGEST_HEADER_TIMEOUT=2s",
        "INGEST_BODY_TIMEOUT=2s", "INGEST_MAX_CONNECTIONS=64", "INGEST_MAX_BODY_BYTES=65536"};
    settings.insert(settings.end(), extra.begin(), extra.end());
    ingest_ = Process({ingest_binary()}, backend().logs() + "/ingest.log",
                      backend().env(port_, settings));
    ASSERT_TRUE(
        wait_until([&] { return HttpClient(port_, 500).get("/health").status == 200; }, 30s))
        << "ingest did not come up; see " << backend().logs();
  }
  void TearDown() override {
    if (ingest_.running()) ingest_.stop(SIGKILL);
  }

  // /health answers within 200 ms on a fresh connection: nothing is stuck.
  void expect_healthy() {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(HttpClient(port_, 2000).get("/health").status, 200);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 200ms);
  }

  // The ingest process's CPU over `window`, idle otherwise: near zero
  // unless a thread spins.
  double cpu_while_idle(std::chrono::milliseconds window = 1000ms) {
    const double before = cpu_seconds(ingest_.pid());
    std::this_thread::sleep_for(window);  // the point: measure over a window
    return cpu_seconds(ingest_.pid()) - before;
  }

  std::uint16_t port_ = 0;
  Process ingest_;
};

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

// A bounded fuzz run (fixed seed): requests built from valid ones with
// bytes flipped, dropped, repeated and inserted, headers duplicated or
// mangled, bodies cut, all split at random points. Whatever comes back must
// be HTTP with a JSON body and never a 500; nothing may hang past the
// timeouts; afterwards ingest idles and serves.
TEST_F(Robustness, FuzzedRequestsGetJsonAnswersAndNothingHangs) {
  // Short timeouts: an unfinished request gets its 408 quickly.
  start_ingest(
      {"INGEST_HEADER_TIMEOUT=300ms", "INGEST_BODY_TIMEOUT=300ms", "INGEST_IDLE_TIMEOUT=300ms"});
  std::mt19937 random(20261130);
  const std::vector<std::string> seeds = {
      post(event_json("fuzz")),
      post("[" + event_json("a") + "," + event_json("b", R"({"n":[1,2,{"x":null}]})") + "]"),
      post(R"({"events":[)" + event_json("c") + "]}"),
      "GET /events?topic=robust&limit=5&order=desc HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\r\n[1,2]\r\n0\r\n\r\n",
  };
  const std::string specials[] = {"\r",
                                  "\n",
                                  "\r\n",
                                  " ",
                                  ":",
                                  "\0",
                                  "\xff",
                                  "\xc3",
                                  "%",
                                  "\"",
                                  "{",
                                  "[",
                                  ",",
                                  "0",
                                  "-",
                                  "chunked",
                                  "Content-Length: 9\r\n",
                                  "Transfer-Encoding: chunked\r\n",
                                  "\\u0000",
                                  "\t"};
  constexpr int kCases = 3000;
  std::atomic<int> next{0};
  std::atomic<int> bad{0};
  std::mutex mutex;
  std::vector<std::string> failures;
  std::map<int, int> statuses;  // what the fuzz reached
  std::vector<std::string> cases(kCases);
  std::vector<std::vector<std::size_t>> splits(kCases);
  for (int i = 0; i < kCases; ++i) {
    std::string r = seeds[random() % seeds.size()];
    const int mutations = 1 + static_cast<int>(random() % 4);
    for (int m = 0; m < mutations && !r.empty(); ++m) {
      const std::size_t at = random() % r.size();
      switch (random() % 6) {
        case 0:
          r[at] = static_cast<char>(random() % 256);
          break;
        case 1:
          r.erase(at, 1 + random() % 8);
          break;
        case 2:
          r.insert(at, specials[random() % std::size(specials)]);
          break;
        case 3:
          r.insert(at, r.substr(at, 1 + random() % 16));
          break;
        case 4:
          r.resize(at);
          break;
        default:
          r.insert(at, std::string(1 + random() % 3, static_cast<char>(random() % 256)));
      }
    }
    cases[static_cast<std::size_t>(i)] = r;
    for (int s = 0; s < 3; ++s)
      splits[static_cast<std::size_t>(i)].push_back(random() % (r.size() + 1));
    std::sort(splits[static_cast<std::size_t>(i)].begin(),
              splits[static_cast<std::size_t>(i)].end());
  }
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < 32; ++w) {
    workers.emplace_back([&] {
      for (int i; (i = next++) < kCases;) {
        const std::string& request = cases[static_cast<std::size_t>(i)];
        RawConnection c(port_);
        if (!c.connected()) {
          ++bad;
          continue;
        }
        std::size_t from = 0;
        for (const std::size_t to : splits[static_cast<std::size_t>(i)]) {
          c.send(request.substr(from, to - from));
          from = to;
        }
        c.send(request.substr(from));
        // Whatever comes back: complete responses, each JSON, none a 500;
        // then the server closes (after an error, a 408 for an unfinished
        // request, or the idle timeout).
        std::string problem;
        while (true) {
          const auto response = c.read(4s);
          if (!response) break;
          {
            std::lock_guard<std::mutex> lock(mutex);
            ++statuses[response->status];
          }
          if (response->status >= 500 && response->status != 501 && response->status != 503 &&
              response->status != 505) {
            problem = "status " + std::to_string(response->status);
          } else if (!is_json(response->body) && response->status != 100) {
            problem = "not JSON: " + response->body.substr(0, 80);
          }
          if (!problem.empty()) break;
        }
        if (problem.empty() && !c.closed_by_server(6s)) problem = "hangs";
        if (problem.empty() && !c.buffer().empty()) {
          problem = "unframed bytes: " + c.buffer().substr(0, 40);
        }
        if (!problem.empty()) {
          ++bad;
          std::lock_guard<std::mutex> lock(mutex);
          if (failures.size() < 10)
            failures.push_back(problem + " for " +
                               json(request).dump(-1, ' ', true, json::error_handler_t::replace));
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::string reached;
  for (const auto& [status, count] : statuses) {
    reached += " " + std::to_string(status) + ":" + std::to_string(count);
  }
  std::printf("[robustness] fuzz: %d cases in %.1f s, %d failed; answers by status%s\n", kCases,
              seconds, bad.load(), reached.c_str());
  for (const auto& f : failures) std::printf("  %s\n", f.c_str());
  EXPECT_EQ(bad.load(), 0);
  EXPECT_LT(cpu_while_idle(), 0.2) << "ingest keeps burning CPU after the fuzz run";
  expect_healthy();
}

}  // namespace
}  // namespace testsupport
