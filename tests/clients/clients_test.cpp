// Clients nobody here wrote, against the real ingest and processor
// executables on a real nats-server and PostgreSQL: the CloudEvents SDK for
// JavaScript and Node's fetch (tests/clients/*.test.mjs, node:test), Python's
// urllib and http.client (python_clients.py, Debian's python3), and the
// server's answers checked against its OpenAPI document by Ajv. Each script
// gets the stack's address in INGEST_URL; its own output is shown.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "http_client.hpp"
#include "pipeline_fixture.hpp"
#include "servers.hpp"

namespace testsupport {
namespace {

using namespace std::chrono_literals;

// nats-server, a database of the shared cluster, the processor and ingest.
class Stack {
 public:
  Stack() : database_(shared_postgres().create_database()), port_(free_port()) {
    const std::vector<std::string> env = {
        "NATS_URL=" + nats_.url(),       "DATABASE_URL=" + shared_postgres().url(database_),
        "CONNECT_TIMEOUT=30s",           "LOG_LEVEL=warn",
        "INGEST_HTTP_ADDRESS=127.0.0.1", "INGEST_HTTP_PORT=" + std::to_string(port_),
        "PROCESSOR_METRICS_ADDRESS=off", "PROCESSOR_FETCH_WAIT=100ms",
    };
    processor_ = Process({PROCESSOR_BINARY}, logs_.path() + "/processor.log", env);
    ingest_ = Process({INGEST_BINARY}, logs_.path() + "/ingest.log", env);
    // Ready, and the processor has made the schema that /events reads.
    up_ = wait_until([&] { return HttpClient(port_, 1000).get("/events?limit=1").status == 200; },
                     60s);
  }
  bool up() const { return up_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& logs() const { return logs_.path(); }

 private:
  TempDir logs_{"clients-logs"};
  NatsServer nats_;
  std::string database_;
  std::uint16_t port_;
  Process processor_;
  Process ingest_;
  bool up_ = false;
};

// Runs `command` in tests/clients with INGEST_URL set; its exit status and output.
std::pair<int, std::string> run_client(const Stack& stack, const std::string& command) {
  const std::string line =
      "cd " CLIENTS_DIR " && INGEST_URL=" + stack.url() + " " + command + " 2>&1";
  // NOLINTNEXTLINE(cert-env33-c): the point is to run a client nobody here wrote
  FILE* pipe = ::popen(line.c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string out;
  std::array<char, 4096> chunk{};
  while (std::fgets(chunk.data(), static_cast<int>(chunk.size()), pipe) != nullptr) {
    out += chunk.data();
  }
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class Clients : public ::testing::Test {
 protected:
  void SetUp() override {
    struct stat info {};
    ASSERT_EQ(::stat(CLIENTS_DIR "/node_modules/cloudevents/package.json", &info), 0)
        << "the npm packages are missing: run make test-deps (npm ci in tests/clients)";
    stack_ = std::make_unique<Stack>();
    ASSERT_TRUE(stack_->up()) << "the stack did not come up; logs in " << stack_->logs();
  }
  void expect_passes(const std::string& command) {
    const auto [status, output] = run_client(*stack_, command);
    std::cout << output;
    EXPECT_EQ(status, 0) << command << " failed; ingest's log: " << stack_->logs();
  }
  std::unique_ptr<Stack> stack_;
};

TEST_F(Clients, CloudEventsSdkForJavaScript) { expect_passes("node cloudevents_sdk.test.mjs"); }

TEST_F(Clients, NodeFetch) { expect_passes("node fetch_clients.test.mjs"); }

TEST_F(Clients, PythonUrllibAndHttpClient) { expect_passes("/usr/bin/python3 python_clients.py"); }

TEST_F(Clients, AnswersMatchTheOpenApiDocument) {
  expect_passes("node openapi_responses.test.mjs");
}

}  // namespace
}  // namespace testsupport
