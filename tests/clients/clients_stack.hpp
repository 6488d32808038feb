#pragma once

// The stack the client tests run against (nats-server, a database of the
// shared PostgreSQL cluster, the processor and ingest as executables), and
// running a client script in tests/clients.
#include <sys/wait.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "http_client.hpp"
#include "pipeline_fixture.hpp"
#include "servers.hpp"

namespace testsupport {

using namespace std::chrono_literals;

// nats-server, a database of the shared cluster, the processor and ingest.
class Stack {
 public:
  explicit Stack(const std::vector<std::string>& extra_env = {})
      : database_(shared_postgres().create_database()), port_(free_port()) {
    std::vector<std::string> env = {
        "NATS_URL=" + nats_.url(),       "DATABASE_URL=" + shared_postgres().url(database_),
        "CONNECT_TIMEOUT=30s",           "LOG_LEVEL=warn",
        "INGEST_HTTP_ADDRESS=127.0.0.1", "INGEST_HTTP_PORT=" + std::to_string(port_),
        "PROCESSOR_METRICS_ADDRESS=off", "PROCESSOR_FETCH_WAIT=100ms",
    };
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    processor_ = Process({PROCESSOR_BINARY}, logs_.path() + "/processor.log", env);
    ingest_ = Process({INGEST_BINARY}, logs_.path() + "/ingest.log", env);
    // Ready, and the processor has made the schema that /events reads.
    up_ = wait_until([&] { return HttpClient(port_, 1000).get("/events?limit=1").status == 200; },
                     60s);
  }
  bool up() const { return up_; }
  std::uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& logs() const { return logs_.path(); }
  /// Events stored under `topic` (up to 1000), 0 when /events fails.
  std::size_t stored(const std::string& topic) const {
    const HttpResponse page = HttpClient(port_, 5000).get("/events?limit=1000&topic=" + topic);
    if (page.status != 200) return 0;
    return nlohmann::json::parse(page.body)["count"].get<std::size_t>();
  }
  /// /stats' duplicate_dropped, -1 when /stats fails.
  std::int64_t duplicates() const {
    const HttpResponse response = HttpClient(port_, 5000).get("/stats");
    if (response.status != 200) return -1;
    return nlohmann::json::parse(response.body)["duplicate_dropped"].get<std::int64_t>();
  }

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
inline std::pair<int, std::string> run_client(const Stack& stack, const std::string& command) {
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

}  // namespace testsupport
