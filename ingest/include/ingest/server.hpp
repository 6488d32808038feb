#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ingest/config.hpp"

namespace ingest {

/// The OpenAPI 3 document of the API (ingest/openapi.json, embedded).
const char* openapi_document();
/// The live page GET / serves (ingest/web/live.html, embedded).
const char* live_page_html();

/// The ingest service: the HTTP API (POST /publish, GET /events, /stats,
/// /health) over a JetStream publisher and the PostgreSQL read side.
class IngestServer {
 public:
  /// Connects to NATS (creating the stream if missing) and PostgreSQL
  /// (applying migrations), retrying for CONNECT_TIMEOUT. Throws
  /// pipeline::nats::NatsError or a pqxx error when a server stays unreachable.
  explicit IngestServer(IngestConfig config);
  ~IngestServer();
  IngestServer(const IngestServer&) = delete;
  IngestServer& operator=(const IngestServer&) = delete;

  /// Starts serving on background threads. Throws when the port is taken.
  void start();
  /// Graceful stop: new requests get 503 (and /ready fails) while the ones in
  /// flight finish, for at most `timeout`; then stop().
  void drain(std::chrono::milliseconds timeout);
  /// Stops serving at once. Idempotent.
  void stop();
  /// The port it listens on (useful with INGEST_HTTP_PORT=0).
  std::uint16_t port() const;

  struct Route {
    std::string method;  ///< GET, POST
    std::string path;
    bool public_route;  ///< served without a token when INGEST_API_TOKENS is set
  };
  /// Every route the server serves (the OpenAPI document must list the same).
  static const std::vector<Route>& routes();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ingest
