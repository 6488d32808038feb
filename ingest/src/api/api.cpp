#include "api/api.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <random>

#include "api/protocol_settings.hpp"
#include "health/readiness.hpp"
#include "ingest/publish_service.hpp"
#include "ingest/server.hpp"
#include "metrics.hpp"
#include "pipeline/fault.hpp"
#include "pipeline/logging.hpp"
#include "pipeline/metrics.hpp"
#include "protocols/publish_request.hpp"
#include "queries/event_queries.hpp"
#include "queries/stats_service.hpp"
#include "queries/worker_pool.hpp"

namespace ingest {
namespace {

using http::json_error;
using http::Request;
using http::Responder;
using http::Response;

Response json_response(int status, std::string body) {
  Response response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

Response retry_later(int status, const std::string& message, std::int64_t seconds) {
  Response response = json_error(status, message);
  response.header("Retry-After", std::to_string(seconds));
  return response;
}

std::int64_t whole_seconds(std::chrono::milliseconds wait) {
  return std::max<std::int64_t>(1, (wait.count() + 999) / 1000);
}

int publish_status(PublishOutcomeKind kind) {
  switch (kind) {
    case PublishOutcomeKind::kOk:
      return 200;
    case PublishOutcomeKind::kAllRejected:
    case PublishOutcomeKind::kBodyInvalid:
      return 400;
    case PublishOutcomeKind::kTooManyEvents:
      return 413;
    case PublishOutcomeKind::kRetryLater:
      return 503;
  }
  return 500;
}

}  // namespace

// The request's id: the client's X-Request-Id when it is a sane one, else a
// new random one. It goes back in the response and into each message header.
std::string request_id_of(const http::Request& request) {
  std::string id(request.header("x-request-id"));
  const bool sane =
      !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
               c == ':';
      });
  if (!sane) {
    thread_local std::mt19937_64 random(std::random_device{}());
    char buffer[17];
    std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(random()));
    id = buffer;
  }
  return id;
}

bool accepts_cloudevents(const http::Request& request) {
  std::string accept(request.header("accept"));
  for (char& c : accept) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return accept.find("application/cloudevents") != std::string::npos;
}

const std::vector<IngestApi::Route>& IngestApi::routes() {
  using A = Access;
  using D = Drain;
  using R = Runs;
  static const std::vector<Route> kRoutes = {
      {"POST", "/publish", A::kToken, D::kRefuse, R::kInline, &IngestApi::publish},
      {"GET", "/events", A::kToken, D::kRefuse, R::kOnWorker, &IngestApi::events},
      {"GET", "/stats", A::kToken, D::kRefuse, R::kOnWorker, &IngestApi::stats},
      {"GET", "/health", A::kPublic, D::kServe, R::kInline, &IngestApi::health},
      {"GET", "/ready", A::kPublic, D::kRefuse, R::kOnWorker, &IngestApi::ready},
      {"GET", "/openapi.json", A::kToken, D::kRefuse, R::kInline, &IngestApi::openapi},
      {"GET", "/metrics", A::kPublic, D::kRefuse, R::kOnWorker, &IngestApi::metrics},
      // Waits on the broker or the database to find where it starts.
      {"GET", "/subscribe", A::kToken, D::kRefuse, R::kOnWorker, &IngestApi::subscribe},
      // The live page for a browser (it holds no data: it asks /subscribe and
      // /stats, with a token), Elasticsearch's description for anything else.
      {"GET", "/", A::kPublic, D::kRefuse, R::kInline, &IngestApi::root},
      // The shipper protocols, each a decoder into the one publish path.
      {"POST", "/v1/logs", A::kToken, D::kRefuse, R::kInline, &IngestApi::otlp_logs},
      {"POST", "/_bulk", A::kToken, D::kRefuse, R::kInline, &IngestApi::es_bulk},
      {"PUT", "/_bulk", A::kToken, D::kRefuse, R::kInline, &IngestApi::es_bulk},
      {"POST", "/{index}/_bulk", A::kToken, D::kRefuse, R::kInline, &IngestApi::es_bulk},
      {"PUT", "/{index}/_bulk", A::kToken, D::kRefuse, R::kInline, &IngestApi::es_bulk},
      {"GET", "/_cluster/health", A::kToken, D::kRefuse, R::kInline, &IngestApi::es_cluster_health},
      {"GET", "/_license", A::kToken, D::kRefuse, R::kInline, &IngestApi::es_license},
      {"POST", "/loki/api/v1/push", A::kToken, D::kRefuse, R::kInline, &IngestApi::loki_push},
  };
  return kRoutes;
}

IngestApi::IngestApi(const IngestConfig& config, ApiServices services, IngestMetrics& metrics,
                     WorkerPool& workers)
    : services_(std::move(services)),
      max_field_length_(config.limits.max_field_length),
      subscribe_retry_(config.subscribe_retry),
      metrics_(metrics),
      workers_(workers),
      max_body_bytes_(config.max_body_bytes),
      authenticator_(config.token_list()),
      limiter_(config.rate_limit_rps, config.rate_limit_burst),
      auth_failures_(config.auth_failure_rate, config.auth_failure_burst),
      protocols_(std::make_unique<ProtocolSettings>(config)) {}

IngestApi::~IngestApi() = default;

bool IngestApi::path_matches(std::string_view pattern, std::string_view path) {
  constexpr std::string_view kSegment = "{index}";
  const std::size_t at = pattern.find(kSegment);
  if (at == std::string_view::npos) return pattern == path;
  const std::string_view before = pattern.substr(0, at);
  const std::string_view after = pattern.substr(at + kSegment.size());
  if (path.size() <= before.size() + after.size() || path.substr(0, before.size()) != before ||
      path.substr(path.size() - after.size()) != after) {
    return false;
  }
  const std::string_view segment =
      path.substr(before.size(), path.size() - before.size() - after.size());
  return segment.find('/') == std::string_view::npos;
}

// Route, count, refuse while draining, admit, then run the handler.
void IngestApi::dispatch(Request&& request, Responder responder) {
  const auto started = std::chrono::steady_clock::now();
  const bool head = request.method == "HEAD";
  const Route* route = nullptr;
  std::string allow;
  const char* pattern = nullptr;  // the route's path: the metric label
  for (const Route& candidate : routes()) {
    if (!path_matches(candidate.path, request.path)) continue;
    pattern = candidate.path;
    allow += (allow.empty() ? "" : ", ") + std::string(candidate.method);
    if (candidate.method == request.method || (head && std::string(candidate.method) == "GET")) {
      route = &candidate;
    }
  }
  const std::string label = pattern != nullptr ? pattern : "other";
  // A subscription's response lasts as long as the subscriber stays: its
  // length is no latency, so it stays out of the duration histogram.
  const bool timed = route == nullptr || route->handler != &IngestApi::subscribe;
  metrics_.in_flight->Increment();
  responder.on_sent([this, label, started, timed](int status) {
    metrics_.in_flight->Decrement();
    metrics_.requests(label, status).Increment();
    if (!timed) return;
    metrics_.request_duration(label).Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  });
  if (route == nullptr && allow.empty()) {
    responder.send(json_error(404, "no such endpoint: " + request.path));
  } else if (route == nullptr) {
    Response response =
        json_error(405, "method not allowed on " + request.path + " (allowed: " + allow + ")");
    response.header("Allow", allow);
    responder.send(std::move(response));
  } else if (draining_ && route->drain == Drain::kRefuse) {
    Response response = retry_later(503, "shutting down; retry elsewhere", 1);
    response.close = true;
    responder.send(std::move(response));
  } else if (auto refusal = admit(request, route->access)) {
    responder.send(std::move(*refusal));
  } else {
    run(*route, std::move(request), std::move(responder));
  }
}

void IngestApi::run(const Route& route, Request&& request, Responder responder) {
  if (route.runs == Runs::kInline) {
    (this->*route.handler)(request, std::move(responder));
    return;
  }
  // std::function needs a copyable task: the request and the responder
  // travel in a shared box.
  auto box =
      std::make_shared<std::pair<Request, Responder>>(std::move(request), std::move(responder));
  workers_.submit([this, box, handler = route.handler] {
    try {
      (this->*handler)(box->first, std::move(box->second));
    } catch (const std::exception& e) {
      pipeline::log::error("handler_failed", {{"error", pipeline::log::first_line(e.what())}});
    }
  });
}

// Authentication and rate limiting: the refusal, or nullopt to go ahead.
std::optional<Response> IngestApi::admit(const Request& request, Access access) {
  if (access == Access::kPublic) return std::nullopt;
  std::string client = "address:" + request.client;
  const auto now = std::chrono::steady_clock::now();
  std::chrono::milliseconds retry_after{0};
  if (authenticator_.enabled()) {
    const auto token = authenticator_.authenticate(request.header("authorization"));
    if (!token) {
      // Guessing costs: failed attempts count against the client's address.
      if (!auth_failures_.allow(client, now, &retry_after)) {
        return retry_later(
            429, "too many failed authentications (INGEST_AUTH_FAILURE_RATE); retry later",
            whole_seconds(retry_after));
      }
      Response response =
          json_error(401, "missing or unknown bearer token (Authorization: Bearer <token>)");
      response.header("WWW-Authenticate", "Bearer realm=\"ingest\"");
      return response;
    }
    client = "token:" + *token;
  }
  if (!limiter_.allow(client, now, &retry_after)) {
    return retry_later(429, "rate limit exceeded (INGEST_RATE_LIMIT); retry later",
                       whole_seconds(retry_after));
  }
  return std::nullopt;
}

void IngestApi::publish(const Request& request, Responder responder) {
  std::string decoded;  // the body inflated, when it came compressed
  PublishInput input;
  if (auto refusal = read_publish_request(request, max_body_bytes_, &decoded, &input)) {
    responder.send(std::move(*refusal));
    return;
  }
  metrics_.body_bytes->Observe(static_cast<double>(request.body.size()));
  const std::string id = request_id_of(request);
  auto pending = std::make_shared<Responder>(std::move(responder));
  services_.publish.publish(input, id, [pending, id](const PublishReport& report) {
    pipeline::fault::crash_point("ingest.after_publish_before_response");
    Response response = json_response(publish_status(report.kind), report.to_json());
    if (report.kind == PublishOutcomeKind::kRetryLater) response.header("Retry-After", "1");
    response.header("X-Request-Id", id);
    pending->send(std::move(response));
  });
}

void IngestApi::events(const Request& request, Responder responder) {
  // Accept: application/cloudevents+json asks for format=cloudevents, unless
  // the query names a format itself.
  const bool cloudevents = accepts_cloudevents(request);
  const EventQueryResult result = services_.events.run([&](const std::string& name) {
    auto value = request.param(name);
    if (!value && name == "format" && cloudevents) value = "cloudevents";
    return value;
  });
  switch (result.kind) {
    case EventQueryResult::Kind::kPage:
      responder.send(json_response(200, result.body));
      return;
    case EventQueryResult::Kind::kInvalid:
      responder.send(json_error(400, result.error));
      return;
    case EventQueryResult::Kind::kNoSchema:
    case EventQueryResult::Kind::kUnavailable:
      responder.send(retry_later(503, result.error, 1));
      return;
  }
}

void IngestApi::stats(const Request& /*request*/, Responder responder) {
  StatsResult result = services_.stats.snapshot();
  if (result.kind == StatsResult::Kind::kOk) {
    responder.send(json_response(200, std::move(result.body)));
  } else {
    responder.send(retry_later(503, result.error, 1));
  }
}

void IngestApi::ready(const Request& /*request*/, Responder responder) {
  ReadinessResult result = services_.readiness.check(draining_);
  responder.send(json_response(result.ready ? 200 : 503, std::move(result.body)));
}

void IngestApi::health(const Request& /*request*/, Responder responder) {
  responder.send(json_response(200, R"({"status":"ok"})"));
}

void IngestApi::metrics(const Request& /*request*/, Responder responder) {
  if (services_.refresh_gauges) services_.refresh_gauges();
  Response response = json_response(200, pipeline::metrics::serialize(*metrics_.registry));
  response.content_type = "text/plain; version=0.0.4";
  responder.send(std::move(response));
}

void IngestApi::openapi(const Request& /*request*/, Responder responder) {
  responder.send(json_response(200, openapi_document()));
}

}  // namespace ingest
