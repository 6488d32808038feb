#include "ingest/server.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "http/server.hpp"
#include "ingest/access_control.hpp"
#include "ingest/event_store.hpp"
#include "ingest/publish_service.hpp"
#include "ingest/publisher.hpp"
#include "metrics.hpp"
#include "pipeline/database.hpp"
#include "pipeline/fault.hpp"
#include "pipeline/jetstream.hpp"
#include "pipeline/logging.hpp"
#include "pipeline/timestamp.hpp"

namespace ingest {
namespace {

using http::json_error;
using http::Request;
using http::Responder;
using http::Response;
using nlohmann::json;

constexpr std::size_t kMaxEventsLimit = 1000;
constexpr std::size_t kDefaultEventsLimit = 100;
// A readiness probe must answer before its caller gives up (Kubernetes
// waits 1 s by default): a broker that does not answer the stream lookup in
// this time is "not responding".
constexpr std::chrono::milliseconds kReadyCheckWait{800};

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

// Content types a JSON body may arrive with: application/json and the
// structured +json types. curl -d sends application/x-www-form-urlencoded, so
// that one is read as JSON too; anything else (text/plain included) is 415.
bool acceptable_content_type(std::string_view header) {
  if (header.empty()) return true;
  std::string base(header.substr(0, header.find(';')));
  base.erase(base.find_last_not_of(" \t") + 1);
  for (char& c : base) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return base == "application/json" || base == "application/x-www-form-urlencoded" ||
         (base.size() > 5 && base.compare(base.size() - 5, 5, "+json") == 0);
}

// Reads an optional RFC 3339 query parameter; sets `error` when it is malformed.
std::optional<std::int64_t> timestamp_param(const Request& request, const std::string& name,
                                            std::string* error) {
  const auto text = request.param(name);
  if (!text) return std::nullopt;
  std::string why;
  const auto parsed = pipeline::parse_rfc3339(*text, &why);
  if (!parsed) {
    *error = name + ": " + why;
    return std::nullopt;
  }
  return parsed->micros_since_epoch;
}

// The request's id: the client's X-Request-Id when it is a sane one, else a
// new random one. It goes back in the response and into each message header.
std::string request_id(const Request& request) {
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

// Threads for the endpoints that wait (on PostgreSQL or a broker answer), so
// that the I/O threads never do.
class WorkerPool {
 public:
  explicit WorkerPool(std::size_t threads) {
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void submit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      cv_.wait(lock, [&] { return quit_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // quit, and nothing left
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool quit_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

struct IngestServer::Impl {
  /// A handler answers through its Responder, now or later, from any thread.
  using Handler = void (Impl::*)(const Request& request, Responder responder);
  struct Route {
    std::string method;
    std::string path;
    bool public_route;  ///< no token needed
    bool always;        ///< served while draining too
    bool waits;         ///< waits on PostgreSQL or the broker: runs on the worker pool
    Handler handler;
  };

  explicit Impl(IngestConfig cfg)
      : config(std::move(cfg)),
        authenticator(config.token_list()),
        limiter(config.rate_limit_rps, config.rate_limit_burst),
        auth_failures(config.auth_failure_rate, config.auth_failure_burst),
        started_at(pipeline::now_utc()),
        started_clock(std::chrono::steady_clock::now()) {
    nats_conn = pipeline::nats::connect(config.common.nats_url, "ingest",
                                        config.common.connect_timeout, /*send_asap=*/false);
    admin_js = pipeline::nats::jetstream(nats_conn.get());
    const auto& common = config.common;
    pipeline::nats::retry_setup("stream", common.connect_timeout, [&] {
      pipeline::nats::ensure_stream(admin_js.get(), common.stream);
    });
    // The consumer too, so /stats can count the backlog before any processor
    // has started; whichever process comes first creates both. Not fatal:
    // accepting events does not need it, and the processor makes sure of it.
    try {
      pipeline::nats::retry_setup("consumer", common.connect_timeout, [&] {
        pipeline::nats::ensure_consumer(admin_js.get(), common.stream, common.consumer);
      });
    } catch (const pipeline::nats::NatsError& e) {
      pipeline::log::warn("consumer_not_ensured", {{"error", pipeline::log::first_line(e.what())}});
    }
    publisher = std::make_unique<JetStreamPublisher>(nats_conn.get(), config.common.stream,
                                                     config.publish_timeout, &metrics);
    {
      auto db = pipeline::db::connect(config.common.database_url, config.common.connect_timeout);
      pipeline::db::apply_migrations(*db);
    }
    store = std::make_unique<EventStore>(config.common.database_url, config.db_pool_size);
    service = std::make_unique<PublishService>(*publisher, config.limits, &metrics);
    workers = std::make_unique<WorkerPool>(config.query_threads);
  }

  static const std::vector<Route>& route_table() {
    static const std::vector<Route> kRoutes = {
        {"POST", "/publish", false, false, false, &Impl::publish},
        {"GET", "/events", false, false, true, &Impl::events},
        {"GET", "/stats", false, false, true, &Impl::stats},
        {"GET", "/health", true, true, false, &Impl::health},
        {"GET", "/ready", true, false, true, &Impl::ready},
        {"GET", "/openapi.json", false, false, false, &Impl::openapi},
        {"GET", "/metrics", true, false, true, &Impl::prometheus_metrics},
    };
    return kRoutes;
  }

  // Every request comes here first (on an I/O thread): route, count,
  // authenticate, rate-limit, then the handler, inline or on a worker.
  void dispatch(Request&& request, Responder responder) {
    const auto started = std::chrono::steady_clock::now();
    const bool head = request.method == "HEAD";
    const Route* route = nullptr;
    std::string allow;
    for (const Route& candidate : route_table()) {
      if (candidate.path != request.path) continue;
      allow += (allow.empty() ? "" : ", ") + candidate.method;
      if (candidate.method == request.method || (head && candidate.method == "GET")) {
        route = &candidate;
      }
    }
    const std::string label = route != nullptr || !allow.empty() ? request.path : "other";
    metrics.in_flight->Increment();
    responder.on_sent([this, label, started](int status) {
      metrics.in_flight->Decrement();
      metrics.requests(label, status).Increment();
      metrics.request_duration(label).Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    });
    if (route == nullptr) {
      if (allow.empty()) {
        responder.send(json_error(404, "no such endpoint: " + request.path));
      } else {
        Response response =
            json_error(405, "method not allowed on " + request.path + " (allowed: " + allow + ")");
        response.header("Allow", allow);
        responder.send(std::move(response));
      }
      return;
    }
    if (draining && !route->always) {
      Response response = retry_later(503, "shutting down; retry elsewhere", 1);
      response.close = true;
      responder.send(std::move(response));
      return;
    }
    if (auto refusal = admit(request, route->public_route)) {
      responder.send(std::move(*refusal));
      return;
    }
    if (!route->waits) {
      (this->*route->handler)(request, std::move(responder));
      return;
    }
    // std::function needs a copyable task: the request and the responder
    // travel in a shared box.
    auto box =
        std::make_shared<std::pair<Request, Responder>>(std::move(request), std::move(responder));
    workers->submit([this, box, handler = route->handler] {
      try {
        (this->*handler)(box->first, std::move(box->second));
      } catch (const std::exception& e) {
        pipeline::log::error("handler_failed", {{"error", pipeline::log::first_line(e.what())}});
      }
    });
  }

  // Authentication and rate limiting, before any handler of a protected
  // route: the refusal, or nullopt to go ahead.
  std::optional<Response> admit(const Request& request, bool public_route) {
    std::string client;
    const auto now = std::chrono::steady_clock::now();
    std::chrono::milliseconds retry_after{0};
    if (authenticator.enabled() && !public_route) {
      const auto token = authenticator.authenticate(request.header("authorization"));
      if (!token) {
        // Guessing costs: failed attempts count against the client's address.
        if (!auth_failures.allow("address:" + request.client, now, &retry_after)) {
          return retry_later(
              429, "too many failed authentications (INGEST_AUTH_FAILURE_RATE); retry later",
              std::max<std::int64_t>(1, (retry_after.count() + 999) / 1000));
        }
        Response response =
            json_error(401, "missing or unknown bearer token (Authorization: Bearer <token>)");
        response.header("WWW-Authenticate", "Bearer realm=\"ingest\"");
        return response;
      }
      client = "token:" + *token;
    } else {
      client = "address:" + request.client;
    }
    if (!public_route && !limiter.allow(client, now, &retry_after)) {
      return retry_later(429, "rate limit exceeded (INGEST_RATE_LIMIT); retry later",
                         std::max<std::int64_t>(1, (retry_after.count() + 999) / 1000));
    }
    return std::nullopt;
  }

  void publish(const Request& request, Responder responder) {
    if (!acceptable_content_type(request.header("content-type"))) {
      responder.send(json_error(415, "Content-Type must be application/json"));
      return;
    }
    metrics.body_bytes->Observe(static_cast<double>(request.body.size()));
    const std::string id = request_id(request);
    auto pending = std::make_shared<Responder>(std::move(responder));
    service->publish(request.body, id, [pending, id](PublishReport report) {
      pipeline::fault::crash_point("ingest.after_publish_before_response");
      Response response = json_response(200, report.to_json());
      switch (report.kind) {
        case PublishOutcomeKind::kOk:
          break;
        case PublishOutcomeKind::kAllRejected:
        case PublishOutcomeKind::kBodyInvalid:
          response.status = 400;
          break;
        case PublishOutcomeKind::kTooManyEvents:
          response.status = 413;
          break;
        case PublishOutcomeKind::kRetryLater:
          response.status = 503;
          response.header("Retry-After", "1");
          break;
      }
      response.header("X-Request-Id", id);
      pending->send(std::move(response));
    });
  }

  void events(const Request& request, Responder responder) {
    EventQuery query;
    query.limit = kDefaultEventsLimit;
    query.topic = request.param("topic");
    query.source = request.param("source");
    std::string error;
    // Checked by the rules of POST /publish: a value no event can have is a
    // client's mistake (400), not a query for the database to choke on.
    if (query.topic && !pipeline::is_valid_topic(*query.topic, config.limits.max_field_length)) {
      error = "topic: must be characters of [A-Za-z0-9._-] with no empty dot-separated part";
    }
    if (query.source && !pipeline::is_valid_text(*query.source, config.limits.max_field_length)) {
      error = "source: must be 1 to max_field_length printable UTF-8 characters";
    }
    query.since_micros = timestamp_param(request, "since", &error);
    query.until_micros = timestamp_param(request, "until", &error);
    if (const auto order = request.param("order")) {
      if (*order == "desc") {
        query.descending = true;
      } else if (*order != "asc") {
        error = "order must be asc or desc";
      }
    }
    if (auto limit = request.param("limit")) {
      std::size_t used = 0;
      long long value = -1;
      try {
        value = std::stoll(*limit, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != limit->size() || value < 1 ||
          value > static_cast<long long>(kMaxEventsLimit)) {
        error = "limit must be a whole number from 1 to " + std::to_string(kMaxEventsLimit);
      }
      query.limit = static_cast<std::size_t>(value);
    }
    if (const auto cursor = request.param("cursor")) {
      query.cursor = EventCursor::decode(*cursor, query.descending);
      if (!query.cursor) error = "cursor is not one this server gave for this order";
    }
    if (!error.empty()) {
      responder.send(json_error(400, error));
      return;
    }
    try {
      const EventPage page = store->events(query);
      std::string body = "{\"count\":" + std::to_string(page.count) + ",\"events\":";
      body += page.events_json;
      body += ",\"next_cursor\":";
      body += page.next ? json(page.next->encode(query.descending)).dump() : "null";
      body += '}';
      responder.send(json_response(200, std::move(body)));
    } catch (const std::exception& e) {
      pipeline::log::warn("events_query_failed", {{"error", pipeline::log::first_line(e.what())}});
      responder.send(retry_later(503, "database unavailable", 1));
    }
  }

  void stats(const Request& /*request*/, Responder responder) {
    // The broker first, the database second: a message the broker no longer
    // counts as pending was committed before it was acked, so the counters
    // read afterwards include it. (The other order can miss a batch that
    // commits and acks between the two reads, and call the pipeline idle
    // with counts still short.)
    std::optional<pipeline::nats::ConsumerBacklog> backlog;
    {
      std::lock_guard<std::mutex> lock(admin_mutex);
      backlog = pipeline::nats::consumer_backlog(admin_js.get(), config.common.stream.name,
                                                 config.common.consumer.durable);
    }
    PipelineCounters counters;
    try {
      counters = store->counters();
    } catch (const std::exception& e) {
      pipeline::log::warn("stats_query_failed", {{"error", pipeline::log::first_line(e.what())}});
      responder.send(retry_later(503, "database unavailable", 1));
      return;
    }
    const std::int64_t duplicates = counters.duplicate_broker + counters.duplicate_database;
    const std::int64_t pending =
        backlog ? static_cast<std::int64_t>(backlog->pending + backlog->ack_pending) : 0;
    json topics = json::array();
    for (const auto& [topic, count] : counters.topics) {
      topics.push_back({{"topic", topic}, {"count", count}});
    }
    const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::steady_clock::now() - started_clock);
    const json out{
        {"received", counters.unique_processed + duplicates + counters.dead_lettered + pending},
        {"unique_processed", counters.unique_processed},
        {"duplicate_dropped", duplicates},
        {"duplicates_by_stage",
         {{"broker", counters.duplicate_broker}, {"database", counters.duplicate_database}}},
        {"dead_lettered", counters.dead_lettered},
        {"pending", backlog ? json(pending) : json(nullptr)},
        {"topics", topics},
        {"uptime_seconds", uptime.count()},
        {"started_at", pipeline::format_rfc3339(started_at)},
    };
    responder.send(json_response(200, out.dump()));
  }

  void ready(const Request& /*request*/, Responder responder) {
    json checks;
    // The broker is "ok" only when it answered the stream lookup: right after
    // it dies the client may still believe it is connected until the socket
    // reports the close, and a status read alone would then say "ok".
    bool nats_up = natsConnection_Status(nats_conn.get()) == NATS_CONN_STATUS_CONNECTED;
    bool stream_ok = false;
    checks["stream"] = "unknown";
    if (nats_up) {
      std::lock_guard<std::mutex> lock(admin_mutex);
      try {
        stream_ok = pipeline::nats::stream_exists(admin_js.get(), config.common.stream.name,
                                                  kReadyCheckWait);
        checks["stream"] = stream_ok ? "ok" : "missing";
      } catch (const std::exception&) {
        nats_up = false;
      }
    }
    const bool connected = natsConnection_Status(nats_conn.get()) == NATS_CONN_STATUS_CONNECTED;
    checks["nats"] = nats_up ? "ok" : (connected ? "not responding" : "disconnected");
    const bool db_ok = store->reachable();
    checks["postgres"] = db_ok ? "ok" : "unreachable";
    const bool is_ready = nats_up && stream_ok && db_ok && !draining;
    json body{{"status", is_ready ? "ready" : "not ready"}, {"checks", checks}};
    if (draining) body["checks"]["draining"] = true;
    if (!is_ready) body["error"] = "a dependency is not available";
    responder.send(json_response(is_ready ? 200 : 503, body.dump()));
  }

  void health(const Request& /*request*/, Responder responder) {
    responder.send(json_response(200, R"({"status":"ok"})"));
  }

  void prometheus_metrics(const Request& /*request*/, Responder responder) {
    metrics.up.nats_up->Set(natsConnection_Status(nats_conn.get()) == NATS_CONN_STATUS_CONNECTED);
    metrics.up.postgres_up->Set(store->reachable() ? 1 : 0);
    Response response = json_response(200, pipeline::metrics::serialize(*metrics.registry));
    response.content_type = "text/plain; version=0.0.4";
    responder.send(std::move(response));
  }

  void openapi(const Request& /*request*/, Responder responder) {
    responder.send(json_response(200, openapi_document()));
  }

  IngestConfig config;
  IngestMetrics metrics;
  TokenAuthenticator authenticator;
  RateLimiter limiter;
  RateLimiter auth_failures;
  pipeline::UtcTimestamp started_at;
  std::chrono::steady_clock::time_point started_clock;
  pipeline::nats::ConnectionPtr nats_conn;
  pipeline::nats::JetStreamPtr admin_js;
  std::mutex admin_mutex;  // guards admin_js, used by /stats and /ready
  std::unique_ptr<JetStreamPublisher> publisher;
  std::unique_ptr<EventStore> store;
  std::unique_ptr<PublishService> service;
  std::unique_ptr<WorkerPool> workers;
  std::unique_ptr<http::HttpServer> http;
  std::atomic<bool> draining{false};
};

const std::vector<IngestServer::Route>& IngestServer::routes() {
  static const std::vector<Route> kRoutes = [] {
    std::vector<Route> out;
    for (const auto& route : Impl::route_table()) {
      out.push_back({route.method, route.path, route.public_route});
    }
    return out;
  }();
  return kRoutes;
}

IngestServer::IngestServer(IngestConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}

IngestServer::~IngestServer() { stop(); }

void IngestServer::start() {
  const auto& cfg = impl_->config;
  http::ServerLimits limits;
  limits.reader.max_request_line = cfg.max_request_line_bytes;
  limits.reader.max_header_bytes = cfg.max_header_bytes;
  limits.reader.max_body_bytes = cfg.max_body_bytes;
  limits.header_timeout = cfg.header_timeout;
  limits.body_timeout = cfg.body_timeout;
  limits.idle_timeout = cfg.idle_timeout;
  limits.write_timeout = cfg.write_timeout;
  limits.max_connections = cfg.max_connections;
  limits.max_pipelined = cfg.max_pipelined;
  limits.threads = cfg.http_threads;
  Impl* impl = impl_.get();
  impl_->http = std::make_unique<http::HttpServer>(
      cfg.http_address, static_cast<std::uint16_t>(cfg.http_port), limits,
      [impl](Request&& request, Responder responder) {
        impl->dispatch(std::move(request), std::move(responder));
      });
  impl_->http->start();
  pipeline::log::info("ingest_listening",
                      {{"address", cfg.http_address},
                       {"port", port()},
                       {"auth", impl_->authenticator.enabled() ? "on" : "off"},
                       {"rate_limit", impl_->limiter.enabled() ? "on" : "off"}});
}

void IngestServer::drain(std::chrono::milliseconds timeout) {
  impl_->draining = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto in_flight = [&] { return impl_->metrics.in_flight->Value(); };
  while (in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pipeline::log::info("ingest_drained", {{"in_flight", in_flight()}});
  stop();
}

void IngestServer::stop() {
  if (impl_ && impl_->http) {
    impl_->http->stop();
    impl_->http.reset();
  }
}

std::uint16_t IngestServer::port() const { return impl_->http ? impl_->http->port() : 0; }

}  // namespace ingest
