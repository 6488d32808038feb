#include "ingest/server.hpp"

#include <pistache/endpoint.h>
#include <pistache/http.h>
#include <pistache/router.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "ingest/access_control.hpp"
#include "ingest/event_store.hpp"
#include "ingest/publish_service.hpp"
#include "ingest/publisher.hpp"
#include "metrics.hpp"
#include "pipeline/database.hpp"
#include "pipeline/fault.hpp"
#include "pipeline/jetstream.hpp"
#include "pipeline/timestamp.hpp"

namespace ingest {
namespace {

using nlohmann::json;
using Pistache::Http::Code;
using Pistache::Http::ResponseWriter;
using Pistache::Rest::Request;

constexpr std::size_t kMaxEventsLimit = 1000;
constexpr std::size_t kDefaultEventsLimit = 100;
// Headers fit in this on top of the body limit; a body over the limit but
// within it gets our JSON 413 rather than Pistache's plain one.
constexpr std::size_t kRequestOverhead = std::size_t{64} * 1024;
// A readiness probe must answer before its caller gives up (Kubernetes
// waits 1 s by default): a broker that does not answer the stream lookup in
// this time is "not responding".
constexpr std::chrono::milliseconds kReadyCheckWait{800};

// A response header Pistache has no class for. Pistache 0.0.5 writes only
// typed headers (addRaw ones are dropped), so Retry-After, WWW-Authenticate
// and Allow need one.
class ExtraHeader final : public Pistache::Http::Header::Header {
 public:
  ExtraHeader(const char* name, std::string value) : name_(name), value_(std::move(value)) {}
  const char* name() const override { return name_; }
  std::uint64_t hash() const override { return Pistache::Http::Header::detail::hash(name_); }
  void write(std::ostream& stream) const override { stream << value_; }

 private:
  const char* name_;
  std::string value_;
};

void add_header(ResponseWriter& response, const char* name, std::string value) {
  response.headers().add(std::make_shared<ExtraHeader>(name, std::move(value)));
}

void send_json(ResponseWriter& response, Code code, const std::string& body) {
  response.headers().add<Pistache::Http::Header::ContentType>(MIME(Application, Json));
  response.send(code, body);
}

void send_error(ResponseWriter& response, Code code, const std::string& message) {
  send_json(response, code, json{{"error", message}}.dump());
}

void send_retry_later(ResponseWriter& response, Code code, const std::string& message,
                      std::int64_t seconds) {
  add_header(response, "Retry-After", std::to_string(seconds));
  send_error(response, code, message);
}

// Content types a JSON body may arrive with: application/json and the
// structured +json types. curl -d sends application/x-www-form-urlencoded, so
// that one is read as JSON too; anything else (text/plain included) is 415.
bool acceptable_content_type(const Request& request) {
  const auto header = request.headers().tryGet<Pistache::Http::Header::ContentType>();
  if (!header) return true;
  const std::string mime = header->mime().toString();
  const std::string base = mime.substr(0, mime.find(';'));
  return base == "application/json" || base == "application/x-www-form-urlencoded" ||
         (base.size() > 5 && base.compare(base.size() - 5, 5, "+json") == 0);
}

// Pistache hands query values over still percent-encoded. '+' stays '+'
// (RFC 3986), so an unencoded "+01:00" offset still reads as one.
std::optional<std::string> query_param(const Request& request, const std::string& name) {
  auto raw = request.query().get(name);
  if (!raw) return raw;
  std::string out;
  out.reserve(raw->size());
  for (std::size_t i = 0; i < raw->size(); ++i) {
    const char c = (*raw)[i];
    if (c == '%' && i + 2 < raw->size() &&
        std::isxdigit(static_cast<unsigned char>((*raw)[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>((*raw)[i + 2]))) {
      out += static_cast<char>(std::stoi(raw->substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

// Reads an optional RFC 3339 query parameter; sets `error` when it is malformed.
std::optional<std::int64_t> timestamp_param(const Request& request, const std::string& name,
                                            std::string* error) {
  const auto text = query_param(request, name);
  if (!text) return std::nullopt;
  std::string why;
  const auto parsed = pipeline::parse_rfc3339(*text, &why);
  if (!parsed) {
    *error = name + ": " + why;
    return std::nullopt;
  }
  return parsed->micros_since_epoch;
}

std::string header_value(const Request& request, const std::string& name) {
  if (const auto raw = request.headers().tryGetRaw(name)) return raw->value();
  if (const auto typed = request.headers().tryGet(name)) {
    std::ostringstream out;
    typed->write(out);
    return out.str();
  }
  return {};
}

// The request's id: the client's X-Request-Id when it is a sane one, else a
// new random one. It goes back in the response and into each message header.
std::string request_id(const Request& request, ResponseWriter& response) {
  std::string id = header_value(request, "X-Request-Id");
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
  add_header(response, "X-Request-Id", id);
  return id;
}

}  // namespace

const std::vector<IngestServer::Route>& IngestServer::routes() {
  static const std::vector<Route> kRoutes = {
      {"POST", "/publish", false}, {"GET", "/events", false}, {"GET", "/stats", false},
      {"GET", "/health", true},    {"GET", "/ready", true},   {"GET", "/openapi.json", false},
      {"GET", "/metrics", true},
  };
  return kRoutes;
}

struct IngestServer::Impl {
  explicit Impl(IngestConfig cfg)
      : config(std::move(cfg)),
        authenticator(config.token_list()),
        limiter(config.rate_limit_rps, config.rate_limit_burst),
        started_at(pipeline::now_utc()),
        started_clock(std::chrono::steady_clock::now()) {
    nats_conn = pipeline::nats::connect(config.common.nats_url, "ingest",
                                        config.common.connect_timeout, /*send_asap=*/true);
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
      spdlog::warn("event=consumer_not_ensured error=\"{}\"", std::string(e.what()).substr(0, 200));
    }
    publisher = std::make_unique<JetStreamPublisher>(nats_conn.get(), config.common.stream,
                                                     config.publish_timeout, &metrics);
    {
      auto db = pipeline::db::connect(config.common.database_url, config.common.connect_timeout);
      pipeline::db::apply_migrations(*db);
    }
    store = std::make_unique<EventStore>(config.common.database_url, config.db_pool_size);
    service = std::make_unique<PublishService>(*publisher, config.limits, &metrics);
  }

  // Authentication and rate limiting, before any handler of a protected
  // route. Returns false when it has answered already.
  bool admit(const Request& request, ResponseWriter& response, bool public_route) {
    std::string client;
    if (authenticator.enabled() && !public_route) {
      const auto token = authenticator.authenticate(header_value(request, "Authorization"));
      if (!token) {
        add_header(response, "WWW-Authenticate", "Bearer realm=\"ingest\"");
        send_error(response, Code::Unauthorized,
                   "missing or unknown bearer token (Authorization: Bearer <token>)");
        return false;
      }
      client = "token:" + *token;
    } else {
      client = "address:" + request.address().host();
    }
    std::chrono::milliseconds retry_after{0};
    if (!public_route && !limiter.allow(client, std::chrono::steady_clock::now(), &retry_after)) {
      const auto seconds = std::max<std::int64_t>(1, (retry_after.count() + 999) / 1000);
      send_retry_later(response, Code::Too_Many_Requests,
                       "rate limit exceeded (INGEST_RATE_LIMIT); retry later", seconds);
      return false;
    }
    return true;
  }

  void publish(const Request& request, ResponseWriter& response) const {
    if (!acceptable_content_type(request)) {
      send_error(response, Code::Unsupported_Media_Type, "Content-Type must be application/json");
      return;
    }
    const std::string& body = request.body();
    metrics.body_bytes->Observe(static_cast<double>(body.size()));
    if (body.size() > config.max_body_bytes) {
      send_error(response, Code::Request_Entity_Too_Large,
                 "request body larger than INGEST_MAX_BODY_BYTES (" +
                     std::to_string(config.max_body_bytes) + " bytes)");
      return;
    }
    const PublishReport report = service->publish_and_wait(body, request_id(request, response));
    pipeline::fault::crash_point("ingest.after_publish_before_response");
    Code code = Code::Ok;
    switch (report.kind) {
      case PublishOutcomeKind::kOk:
        code = Code::Ok;
        break;
      case PublishOutcomeKind::kAllRejected:
      case PublishOutcomeKind::kBodyInvalid:
        code = Code::Bad_Request;
        break;
      case PublishOutcomeKind::kTooManyEvents:
        code = Code::Request_Entity_Too_Large;
        break;
      case PublishOutcomeKind::kRetryLater:
        code = Code::Service_Unavailable;
        add_header(response, "Retry-After", "1");
        break;
    }
    send_json(response, code, report.to_json());
  }

  void events(const Request& request, ResponseWriter& response) const {
    EventQuery query;
    query.limit = kDefaultEventsLimit;
    query.topic = query_param(request, "topic");
    query.source = query_param(request, "source");
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
    if (const auto order = query_param(request, "order")) {
      if (*order == "desc") {
        query.descending = true;
      } else if (*order != "asc") {
        error = "order must be asc or desc";
      }
    }
    if (auto limit = query_param(request, "limit")) {
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
    if (const auto cursor = query_param(request, "cursor")) {
      query.cursor = EventCursor::decode(*cursor, query.descending);
      if (!query.cursor) error = "cursor is not one this server gave for this order";
    }
    if (!error.empty()) {
      send_error(response, Code::Bad_Request, error);
      return;
    }
    try {
      const EventPage page = store->events(query);
      std::string body = "{\"count\":" + std::to_string(page.count) + ",\"events\":";
      body += page.events_json;
      body += ",\"next_cursor\":";
      body += page.next ? json(page.next->encode(query.descending)).dump() : "null";
      body += '}';
      send_json(response, Code::Ok, body);
    } catch (const std::exception& e) {
      spdlog::warn("event=events_query_failed error=\"{}\"", std::string(e.what()).substr(0, 200));
      send_retry_later(response, Code::Service_Unavailable, "database unavailable", 1);
    }
  }

  void stats(const Request& /*request*/, ResponseWriter& response) const {
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
      spdlog::warn("event=stats_query_failed error=\"{}\"", std::string(e.what()).substr(0, 200));
      send_retry_later(response, Code::Service_Unavailable, "database unavailable", 1);
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
    send_json(response, Code::Ok, out.dump());
  }

  void ready(const Request& /*request*/, ResponseWriter& response) const {
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
    const bool ready = nats_up && stream_ok && db_ok;
    json body{{"status", ready ? "ready" : "not ready"}, {"checks", checks}};
    if (!ready) body["error"] = "a dependency is not available";
    send_json(response, ready ? Code::Ok : Code::Service_Unavailable, body.dump());
  }

  void health(const Request& /*request*/, ResponseWriter& response) const {
    send_json(response, Code::Ok, R"({"status":"ok"})");
  }

  void prometheus_metrics(const Request& /*request*/, ResponseWriter& response) const {
    metrics.up.nats_up->Set(natsConnection_Status(nats_conn.get()) == NATS_CONN_STATUS_CONNECTED);
    metrics.up.postgres_up->Set(store->reachable() ? 1 : 0);
    response.headers().add<Pistache::Http::Header::ContentType>(
        Pistache::Http::Mime::MediaType::fromString("text/plain; version=0.0.4"));
    response.send(Code::Ok, pipeline::metrics::serialize(*metrics.registry));
  }

  void openapi(const Request& /*request*/, ResponseWriter& response) const {
    send_json(response, Code::Ok, openapi_document());
  }

  IngestConfig config;
  // mutable: counting is not a change of the server's state.
  mutable IngestMetrics metrics;
  TokenAuthenticator authenticator;
  RateLimiter limiter;
  pipeline::UtcTimestamp started_at;
  std::chrono::steady_clock::time_point started_clock;
  pipeline::nats::ConnectionPtr nats_conn;
  pipeline::nats::JetStreamPtr admin_js;
  mutable std::mutex admin_mutex;  // guards admin_js, used by /stats and /ready
  std::unique_ptr<JetStreamPublisher> publisher;
  std::unique_ptr<EventStore> store;
  std::unique_ptr<PublishService> service;
  std::unique_ptr<Pistache::Http::Endpoint> endpoint;
  std::atomic<bool> draining{false};
  std::atomic<int> in_flight{0};
  std::shared_ptr<Pistache::Rest::Router> router = std::make_shared<Pistache::Rest::Router>();
};

IngestServer::IngestServer(IngestConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {
  using Handler = void (Impl::*)(const Request&, ResponseWriter&) const;
  const std::map<std::string, Handler> handlers = {
      {"/publish", &Impl::publish},
      {"/events", &Impl::events},
      {"/stats", &Impl::stats},
      {"/health", &Impl::health},
      {"/ready", &Impl::ready},
      {"/openapi.json", &Impl::openapi},
      {"/metrics", &Impl::prometheus_metrics},
  };
  Impl* impl = impl_.get();
  for (const Route& route : routes()) {
    const Handler handler = handlers.at(route.path);
    const bool public_route = route.public_route;
    // The Impl outlives the endpoint, so the raw pointer stays valid.
    const bool always = route.path == "/health";
    const std::string path = route.path;
    auto call = [impl, handler, public_route, always, path](const Request& request,
                                                            ResponseWriter response) {
      const auto started = std::chrono::steady_clock::now();
      ++impl->in_flight;
      impl->metrics.in_flight->Increment();
      if (impl->draining && !always) {
        send_retry_later(response, Code::Service_Unavailable, "shutting down; retry elsewhere", 1);
      } else if (impl->admit(request, response, public_route)) {
        (impl->*handler)(request, response);
      }
      impl->metrics.in_flight->Decrement();
      --impl->in_flight;
      impl->metrics.requests(path, static_cast<int>(response.getResponseCode())).Increment();
      impl->metrics.request_duration(path).Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      return Pistache::Rest::Route::Result::Ok;
    };
    if (route.method == "POST") {
      Pistache::Rest::Routes::Post(*impl->router, route.path, call);
    } else {
      Pistache::Rest::Routes::Get(*impl->router, route.path, call);
    }
  }
  // Every other method on a known path: a JSON 405 with Allow (the router's
  // own answer would be plain text).
  using Pistache::Http::Method;
  for (const Route& route : routes()) {
    std::string allow;
    for (const Route& other : routes()) {
      if (other.path == route.path) allow += (allow.empty() ? "" : ", ") + other.method;
    }
    for (const Method method : {Method::Get, Method::Post, Method::Put, Method::Patch,
                                Method::Delete, Method::Options, Method::Head}) {
      const std::string name = Pistache::Http::methodString(method);
      if (allow.find(name) != std::string::npos) continue;
      impl->router->addRoute(
          method, route.path,
          [impl, allow, path = route.path](const Request& request, ResponseWriter response) {
            add_header(response, "Allow", allow);
            send_error(response, Code::Method_Not_Allowed,
                       "method not allowed on " + request.resource() + " (allowed: " + allow + ")");
            impl->metrics.requests(path, 405).Increment();
            return Pistache::Rest::Route::Result::Ok;
          });
    }
  }
  impl->router->addNotFoundHandler([impl](const Request& request, ResponseWriter response) {
    send_error(response, Code::Not_Found, "no such endpoint: " + request.resource());
    impl->metrics.requests("other", 404).Increment();
    return Pistache::Rest::Route::Result::Ok;
  });
}

IngestServer::~IngestServer() { stop(); }

void IngestServer::start() {
  const auto& cfg = impl_->config;
  Pistache::Address address(cfg.http_address,
                            Pistache::Port(static_cast<std::uint16_t>(cfg.http_port)));
  impl_->endpoint = std::make_unique<Pistache::Http::Endpoint>(address);
  auto opts = Pistache::Http::Endpoint::options()
                  .threads(static_cast<int>(cfg.http_threads))
                  .flags(Pistache::Tcp::Options::ReuseAddr)
                  .maxRequestSize(cfg.max_body_bytes + kRequestOverhead)
                  .headerTimeout(cfg.header_timeout)
                  .bodyTimeout(cfg.body_timeout);
  impl_->endpoint->init(opts);
  impl_->endpoint->setHandler(Pistache::Rest::Router::handler(impl_->router));
  impl_->endpoint->serveThreaded();
  spdlog::info("event=ingest_listening address={} port={} auth={} rate_limit={}", cfg.http_address,
               port(), impl_->authenticator.enabled() ? "on" : "off",
               impl_->limiter.enabled() ? "on" : "off");
}

void IngestServer::drain(std::chrono::milliseconds timeout) {
  impl_->draining = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (impl_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  spdlog::info("event=ingest_drained in_flight={}", impl_->in_flight.load());
  stop();
}

void IngestServer::stop() {
  if (impl_ && impl_->endpoint) {
    impl_->endpoint->shutdown();
    impl_->endpoint.reset();
  }
}

std::uint16_t IngestServer::port() const {
  return impl_->endpoint ? static_cast<std::uint16_t>(impl_->endpoint->getPort()) : 0;
}

}  // namespace ingest
