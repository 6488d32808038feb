#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.hpp"
#include "http/server.hpp"
#include "ingest/access_control.hpp"
#include "ingest/config.hpp"

namespace ingest {

class PublishService;
class EventQueryService;
class StatsService;
class ReadinessService;
class SubscriptionHub;
class WorkerPool;
struct IngestMetrics;
struct ProtocolSettings;

/// The request's id: the client's X-Request-Id when it is a sane one, else a
/// new random one. It goes back in the response and into each message header.
std::string request_id_of(const http::Request& request);

/// True when the Accept header names a CloudEvents media type
/// (application/cloudevents+json): GET /events and GET /subscribe then
/// render events as CloudEvents, unless `format` says otherwise.
bool accepts_cloudevents(const http::Request& request);

/// What the HTTP handlers adapt: the transport-free services, and a hook
/// that refreshes the up-gauges before /metrics is rendered.
struct ApiServices {
  PublishService& publish;
  EventQueryService& events;
  StatsService& stats;
  ReadinessService& readiness;
  SubscriptionHub& hub;
  std::function<void()> refresh_gauges;
};

/// The HTTP API: one route table (method, path, who may call, when, where it
/// runs, and its handler together), admission (token, rate limits, drain),
/// request metrics, and thin handlers that turn a request into a service
/// call and the service's outcome into a status.
class IngestApi {
 public:
  enum class Access { kToken, kPublic };   ///< a token needed when tokens are set
  enum class Drain { kRefuse, kServe };    ///< served while draining?
  enum class Runs { kInline, kOnWorker };  ///< waits on PostgreSQL or the broker?
  using Handler = void (IngestApi::*)(const http::Request&, http::Responder);
  struct Route {
    const char* method;
    const char* path;
    Access access;
    Drain drain;
    Runs runs;
    Handler handler;
  };
  /// Every route the server serves (the OpenAPI document lists the same).
  static const std::vector<Route>& routes();

  IngestApi(const IngestConfig& config, ApiServices services, IngestMetrics& metrics,
            WorkerPool& workers);
  ~IngestApi();
  IngestApi(const IngestApi&) = delete;
  IngestApi& operator=(const IngestApi&) = delete;
  /// True when `path` is served by the route of `pattern` ("/{index}/_bulk"
  /// stands for any one path segment there).
  static bool path_matches(std::string_view pattern, std::string_view path);

  /// True for a request whose answer may be a stream (GET /subscribe): the
  /// transport reads nothing after it on its connection.
  static bool may_stream(const http::Request& request);

  /// Every request comes here first (on an I/O thread).
  void dispatch(http::Request&& request, http::Responder responder);
  /// From now on every route but the Drain::kServe ones answers 503.
  void start_draining() { draining_ = true; }
  bool draining() const { return draining_; }
  bool auth_enabled() const { return authenticator_.enabled(); }
  bool rate_limit_enabled() const { return limiter_.enabled(); }

 private:
  std::optional<http::Response> admit(const http::Request& request, Access access);
  void run(const Route& route, http::Request&& request, http::Responder responder);

  void publish(const http::Request& request, http::Responder responder);
  void events(const http::Request& request, http::Responder responder);
  void stats(const http::Request& request, http::Responder responder);
  void ready(const http::Request& request, http::Responder responder);
  void health(const http::Request& request, http::Responder responder);
  void metrics(const http::Request& request, http::Responder responder);
  void openapi(const http::Request& request, http::Responder responder);
  void subscribe(const http::Request& request, http::Responder responder);  // api_subscribe.cpp
  void live_page(const http::Request& request, http::Responder responder);  // api_subscribe.cpp
  // The shipper protocols (api_protocols.cpp).
  void root(const http::Request& request, http::Responder responder);
  void otlp_logs(const http::Request& request, http::Responder responder);
  void es_bulk(const http::Request& request, http::Responder responder);
  void es_cluster_health(const http::Request& request, http::Responder responder);
  void es_license(const http::Request& request, http::Responder responder);
  void loki_push(const http::Request& request, http::Responder responder);
  // The body with its Content-Encoding undone (into *decoded when inflated),
  // or the error answer (status and message) for the protocol to render.
  struct Body {
    std::string_view text;
    int status = 0;
    std::string error;
  };
  Body body_of(const http::Request& request, std::string* decoded) const;

  ApiServices services_;
  std::size_t max_field_length_;
  std::chrono::milliseconds subscribe_retry_;
  IngestMetrics& metrics_;
  WorkerPool& workers_;
  std::size_t max_body_bytes_;  ///< INGEST_MAX_BODY_BYTES, also for an inflated body
  TokenAuthenticator authenticator_;
  RateLimiter limiter_;
  RateLimiter auth_failures_;
  std::atomic<bool> draining_{false};
  std::unique_ptr<ProtocolSettings> protocols_;
};

}  // namespace ingest
