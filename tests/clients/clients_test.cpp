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

#include "clients_stack.hpp"

namespace testsupport {
namespace {

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

// The shippers' protocols, each with its clients (tests/clients/*.test.mjs).
TEST_F(Clients, OpenTelemetrySdkWithBothOtlpExporters) { expect_passes("node otlp_sdk.test.mjs"); }

TEST_F(Clients, ElasticsearchClientBulkHelper) { expect_passes("node es_client.test.mjs"); }

TEST_F(Clients, PinoLokiAndAProtobufPush) { expect_passes("node loki_clients.test.mjs"); }

}  // namespace
}  // namespace testsupport
