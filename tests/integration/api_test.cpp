// The HTTP API contract: auth, rate limits, readiness, backpressure,
// method and timeout handling, the OpenAPI document.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <thread>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "pipeline_fixture.hpp"

namespace testsupport {
namespace {

using nlohmann::json;

class Api : public PipelineTest {};

// Everything the services log while it lives, at every level.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>(
        "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(text_));
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::string text() const { return text_.str(); }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST_F(Api, BearerTokensGuardEverythingButHealthReadyAndMetrics) {
  api_tokens_ = "first-token, second-token";
  LogCapture logs;
  start_all();
  const HttpResponse missing = publish(event("a", "1"));
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.header("www-authenticate").rfind("Bearer", 0), 0u);
  EXPECT_TRUE(json::parse(missing.body).contains("error"));
  const HttpResponse wrong =
      http().request("POST", "/publish", event("a", "1").dump(), "application/json",
                     {{"Authorization", "Bearer first-tokeN"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(http().get("/stats").status, 401);
  EXPECT_EQ(http().get("/events").status, 401);

  const HttpResponse good =
      http().request("POST", "/publish", event("a", "1").dump(), "application/json",
                     {{"Authorization", "Bearer second-token"}});
  EXPECT_EQ(good.status, 200) << good.body;
  EXPECT_EQ(
      http().request("GET", "/stats", "", "", {{"Authorization", "Bearer first-token"}}).status,
      200);
  EXPECT_EQ(http().get("/health").status, 200);
  EXPECT_EQ(http().get("/ready").status, 200);
  EXPECT_EQ(http().get("/metrics").status, 200);
  EXPECT_EQ(http().get("/openapi.json").status, 401);
  EXPECT_EQ(http()
                .request("GET", "/openapi.json", "", "", {{"Authorization", "Bearer first-token"}})
                .status,
            200);
  stop_ingest();
  const std::string logged = logs.text();
  EXPECT_NE(logged.find("ingest_listening"), std::string::npos) << "the capture works";
  for (const char* secret : {"first-token", "second-token", "first-tokeN"}) {
    EXPECT_EQ(logged.find(secret), std::string::npos) << secret << " was logged:\n" << logged;
  }
}

TEST_F(Api, RateLimitAnswers429WithRetryAfter) {
  rate_limit_ = 0.5;  // one request every two seconds after a burst of three
  rate_burst_ = 3;
  start_all();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(http().get("/events").status, 200);
  const HttpResponse limited = http().get("/events");
  EXPECT_EQ(limited.status, 429);
  EXPECT_GE(std::stoi(limited.header("retry-after")), 1);
  EXPECT_TRUE(json::parse(limited.body).contains("error"));
  EXPECT_EQ(http().get("/health").status, 200) << "health is never rate limited";
}

TEST_F(Api, ReadyReportsWhichDependencyIsDown) {
  start_all();
  const HttpResponse up = http().get("/ready");
  ASSERT_EQ(up.status, 200) << up.body;
  EXPECT_EQ(json::parse(up.body)["checks"]["postgres"], "ok");
  nats_->kill9();
  HttpResponse down;
  ASSERT_TRUE(wait_until(
      [&] {
        down = http().get("/ready");
        return down.status == 503;
      },
      std::chrono::seconds(10)));
  EXPECT_NE(json::parse(down.body)["checks"]["nats"], "ok");
  EXPECT_EQ(http().get("/health").status, 200) << "alive even when not ready";
}

TEST_F(Api, BrokerDownMeans503WithRetryAfterAndARetryIsSafe) {
  publish_timeout_ = std::chrono::milliseconds(500);
  start_all();
  ASSERT_EQ(publish(event("bp", "before")).status, 200);
  nats_->kill9();
  const json batch = json::array({event("bp", "x1"), event("bp", "x2")});
  const HttpResponse refused = publish(batch);
  ASSERT_EQ(refused.status, 503) << refused.body;
  EXPECT_FALSE(refused.header("retry-after").empty());
  const json body = json::parse(refused.body);
  EXPECT_EQ(body["failed"], 2);
  EXPECT_EQ(body["results"][0]["status"], "failed");

  nats_->start();
  HttpResponse retried;
  ASSERT_TRUE(wait_until(
      [&] {
        retried = publish(batch);
        return retried.status == 200;
      },
      std::chrono::seconds(30)))
      << retried.body;
  // The events may have reached the stream after all while the first answer
  // was a 503; either way each is stored once.
  wait_for_idle(3);
  EXPECT_EQ(count_rows(), 3);
}

TEST_F(Api, FullStreamMeans503NotSilentLoss) {
  stream_.max_bytes = 4096;
  start_all();
  int accepted = 0;
  HttpResponse last;
  for (int i = 0; i < 100 && last.status != 503; ++i) {
    last = publish(event("full", std::to_string(i), {{"pad", std::string(200, 'x')}}));
    if (last.status == 200) ++accepted;
  }
  ASSERT_EQ(last.status, 503) << last.body;
  EXPECT_FALSE(last.header("retry-after").empty());
  EXPECT_NE(json::parse(last.body)["results"][0]["error"].get<std::string>().find("JetStream"),
            std::string::npos);
  EXPECT_GT(accepted, 0);
  wait_for_idle(accepted);
  EXPECT_EQ(count_rows(), accepted);
}

TEST_F(Api, WrongMethodIs405WithAllow) {
  start_all();
  const HttpResponse response = http().get("/publish");
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(response.header("allow"), "POST");
  EXPECT_TRUE(json::parse(response.body).contains("error"));
  EXPECT_EQ(http().get("/nowhere").status, 404);

  // Both answers are counted like any other.
  const std::string metrics = http().get("/metrics").body;
  const auto counted = [&](const std::string& code, const std::string& route) {
    std::istringstream lines(metrics);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("pipeline_http_requests_total{", 0) == 0 &&
          line.find("code=\"" + code + "\"") != std::string::npos &&
          line.find("route=\"" + route + "\"") != std::string::npos) {
        return std::stod(line.substr(line.rfind(' ') + 1));
      }
    }
    return 0.0;
  };
  EXPECT_EQ(counted("405", "/publish"), 1.0) << metrics;
  EXPECT_EQ(counted("404", "other"), 1.0) << metrics;
}

TEST_F(Api, SlowClientIsCutOffAfterTheHeaderTimeout) {
  header_timeout_ = std::chrono::milliseconds(300);
  start_all();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(ingest_->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string partial = "POST /publish HTTP/1.1\r\nHost: x\r\n";
  ASSERT_EQ(::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(partial.size()));
  // The server must answer (408) or close; it must not wait for us forever.
  pollfd pfd{fd, POLLIN, 0};
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1) << "connection still held open after 5 s";
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
  char buffer[4096];
  const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
  if (n > 0) {  // an answer rather than a bare close: a 408 (from Pistache's parser, no body)
    const std::string answer(buffer, static_cast<std::size_t>(n));
    EXPECT_EQ(answer.rfind("HTTP/1.1 408", 0), 0u) << answer;
  }
  ::close(fd);
}

TEST_F(Api, ServesTheOpenApiDocumentFromTheRepository) {
  start_all();
  const HttpResponse response = http().get("/openapi.json");
  ASSERT_EQ(response.status, 200);
  std::ifstream file(std::string(PIPELINE_SOURCE_DIR) + "/ingest/openapi.json");
  std::stringstream text;
  text << file.rdbuf();
  EXPECT_EQ(json::parse(response.body), json::parse(text.str()));
}

TEST_F(Api, CountersAreExactWithTwoIngestsAndTwoProcessors) {
  start_all();
  processor::Processor second_processor(processor_config());
  second_processor.start();
  ingest::IngestServer second_ingest(ingest_config());
  second_ingest.start();

  constexpr int kUnique = 2000;
  std::vector<std::thread> clients;
  clients.reserve(4);
  const std::uint16_t ports[] = {ingest_->port(), second_ingest.port()};
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      HttpClient client(ports[c % 2]);
      // Every client sends every event: 4x the events, 3/4 of them duplicates.
      for (int start = 0; start < kUnique; start += 100) {
        json batch = json::array();
        for (int i = start; i < start + 100; ++i) batch.push_back(event("two", std::to_string(i)));
        EXPECT_EQ(client.post("/publish", batch.dump()).status, 200);
      }
    });
  }
  for (auto& t : clients) t.join();
  const json s = wait_for_idle(kUnique);
  EXPECT_EQ(s["received"], 4 * kUnique);
  EXPECT_EQ(s["duplicate_dropped"], 3 * kUnique);
  EXPECT_EQ(count_rows(), kUnique);
  second_ingest.stop();
  second_processor.stop();
}

}  // namespace
}  // namespace testsupport
