#pragma once

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

#include <algorithm>
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
  bool send(const std::string& bytes) const {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }
  void finish_sending() const { ::shutdown(fd_, SHUT_WR); }

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

inline std::string event_json(const std::string& id, const std::string& payload = "{}",
                              const std::string& topic = "robust") {
  return R"({"topic":")" + topic + R"(","event_id":")" + id +
         R"(","timestamp":"2026-11-24T10:00:00Z","source":"robustness","payload":)" + payload + "}";
}

inline std::string post(const std::string& body, const std::string& extra_headers = "") {
  return "POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Valid JSON (RFC 8259 sets no limit on numbers; nlohmann refuses those a
// double cannot hold, such as the 1e400 jsonb keeps: they are read as 0).
inline bool is_json(const std::string& body) {
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
inline double cpu_seconds(pid_t pid) {
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
inline std::pair<int, std::string> run(const std::string& command) {
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
inline std::string ingest_binary() {
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
  // The services' environment; a variable of `extra` replaces the same one
  // of the defaults.
  std::vector<std::string> env(std::uint16_t port, const std::vector<std::string>& extra) const {
    std::vector<std::string> vars = {
        "NATS_URL=" + nats_.url(),       "DATABASE_URL=" + postgres_.url("robust"),
        "CONNECT_TIMEOUT=30s",           "LOG_LEVEL=warn",
        "INGEST_HTTP_ADDRESS=127.0.0.1", "INGEST_HTTP_PORT=" + std::to_string(port),
        "INGEST_PUBLISH_TIMEOUT=2s",     "PROCESSOR_METRICS_ADDRESS=off",
    };
    const auto name = [](const std::string& var) { return var.substr(0, var.find('=')); };
    for (const std::string& var : extra) {
      vars.erase(std::remove_if(vars.begin(), vars.end(),
                                [&](const std::string& v) { return name(v) == name(var); }),
                 vars.end());
      vars.push_back(var);
    }
    return vars;
  }
  /// DATABASE_URL=... through `port` (a FaultProxy) instead of straight.
  std::string database_via(std::uint16_t port) const {
    return "DATABASE_URL=host=127.0.0.1 port=" + std::to_string(port) +
           " user=postgres dbname=robust connect_timeout=5";
  }
  std::uint16_t postgres_port() const { return postgres_.port(); }
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

inline Backend& backend() {
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
  void expect_healthy() const {
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

}  // namespace testsupport
