#include "ingest/server.hpp"

#include <pistache/endpoint.h>
#include <pistache/http.h>
#include <pistache/router.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "ingest/event_store.hpp"
#include "ingest/publish_service.hpp"
#include "ingest/publisher.hpp"
#include "pipeline/database.hpp"
#include "pipeline/jetstream.hpp"
#include "pipeline/timestamp.hpp"

namespace ingest {
namespace {

using nlohmann::json;
using Pistache::Http::Code;
using Pistache::Http::ResponseWriter;
using Pistache::Rest::Request;

constexpr std::size_t kMaxEventsLimit = 1000;
// Headers fit in this on top of the body limit; a body over the limit but
// within it gets our JSON 413 rather than Pistache's plain one.
constexpr std::size_t kRequestOverhead = std::size_t{64} * 1024;

void send_json(ResponseWriter& response, Code code, const std::string& body) {
  response.headers().add<Pistache::Http::Header::ContentType>(MIME(Application, Json));
  response.send(code, body);
}

void send_error(ResponseWriter& response, Code code, const std::string& message) {
  send_json(response, code, json{{"error", message}}.dump());
}

// Content types a JSON body may arrive with. curl -d sends
// application/x-www-form-urlencoded, so that one is read as JSON too.
bool acceptable_content_type(const Request& request) {
  const auto header = request.headers().tryGet<Pistache::Http::Header::ContentType>();
  if (!header) return true;
  const std::string mime = header->mime().toString();
  const std::string base = mime.substr(0, mime.find(';'));
  return base == "application/json" || base == "application/x-www-form-urlencoded" ||
         base == "text/plain" ||
         (base.size() > 5 && base.compare(base.size() - 5, 5, "+json") == 0);
}

}  // namespace

struct IngestServer::Impl {
  explicit Impl(IngestConfig cfg)
      : config(std::move(cfg)),
        started_at(pipeline::now_utc()),
        started_clock(std::chrono::steady_clock::now()) {
    nats_conn =
        pipeline::nats::connect(config.common.nats_url, "ingest", config.common.connect_timeout);
    admin_js = pipeline::nats::jetstream(nats_conn.get());
    pipeline::nats::ensure_stream(admin_js.get(), config.common.stream);
    publisher = std::make_unique<JetStreamPublisher>(nats_conn.get(), config.common.stream,
                                                     config.publish_timeout);
    {
      auto db = pipeline::db::connect(config.common.database_url, config.common.connect_timeout);
      pipeline::db::apply_migrations(*db);
    }
    store = std::make_unique<EventStore>(config.common.database_url, config.db_pool_size);
    service = std::make_unique<PublishService>(*publisher, *store, config.limits);
  }

  void publish(const Request& request, ResponseWriter response) const {
    if (!acceptable_content_type(request)) {
      send_error(response, Code::Unsupported_Media_Type, "Content-Type must be application/json");
      return;
    }
    const std::string& body = request.body();
    if (body.size() > config.max_body_bytes) {
      send_error(response, Code::Request_Entity_Too_Large,
                 "request body larger than INGEST_MAX_BODY_BYTES (" +
                     std::to_string(config.max_body_bytes) + " bytes)");
      return;
    }
    const PublishReport report = service->publish(body);
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
        response.headers().addRaw(Pistache::Http::Header::Raw("Retry-After", "1"));
        break;
    }
    send_json(response, code, report.to_json());
  }

  void events(const Request& request, ResponseWriter response) const {
    EventQuery query;
    if (auto topic = request.query().get("topic")) query.topic = *topic;
    if (auto limit = request.query().get("limit")) {
      std::size_t used = 0;
      long long value = -1;
      try {
        value = std::stoll(*limit, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != limit->size() || value < 1 ||
          value > static_cast<long long>(kMaxEventsLimit)) {
        send_error(response, Code::Bad_Request,
                   "limit must be a whole number from 1 to " + std::to_string(kMaxEventsLimit));
        return;
      }
      query.limit = static_cast<std::size_t>(value);
    }
    try {
      const std::string events = store->events_json(query);
      const json parsed = json::parse(events);
      send_json(response, Code::Ok, json{{"count", parsed.size()}, {"events", parsed}}.dump());
    } catch (const std::exception& e) {
      spdlog::warn("event=events_query_failed error=\"{}\"", std::string(e.what()).substr(0, 200));
      response.headers().addRaw(Pistache::Http::Header::Raw("Retry-After", "1"));
      send_error(response, Code::Service_Unavailable, "database unavailable");
    }
  }

  void stats(const Request& /*request*/, ResponseWriter response) const {
    PipelineCounters counters;
    try {
      counters = store->counters();
    } catch (const std::exception& e) {
      spdlog::warn("event=stats_query_failed error=\"{}\"", std::string(e.what()).substr(0, 200));
      response.headers().addRaw(Pistache::Http::Header::Raw("Retry-After", "1"));
      send_error(response, Code::Service_Unavailable, "database unavailable");
      return;
    }
    std::optional<pipeline::nats::ConsumerBacklog> backlog;
    {
      std::lock_guard<std::mutex> lock(admin_mutex);
      backlog = pipeline::nats::consumer_backlog(admin_js.get(), config.common.stream.name,
                                                 config.common.consumer.durable);
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
    json out{
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

  IngestConfig config;
  pipeline::UtcTimestamp started_at;
  std::chrono::steady_clock::time_point started_clock;
  pipeline::nats::ConnectionPtr nats_conn;
  pipeline::nats::JetStreamPtr admin_js;
  mutable std::mutex admin_mutex;  // guards admin_js, used by /stats
  std::unique_ptr<JetStreamPublisher> publisher;
  std::unique_ptr<EventStore> store;
  std::unique_ptr<PublishService> service;
  std::unique_ptr<Pistache::Http::Endpoint> endpoint;
  Pistache::Rest::Router router;
};

IngestServer::IngestServer(IngestConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {
  auto& r = impl_->router;
  Impl* impl = impl_.get();
  // Each route calls one Impl member; the Impl outlives the endpoint.
  const auto route = [impl](void (Impl::*handler)(const Request&, ResponseWriter) const) {
    return [impl, handler](const Request& request, ResponseWriter response) {
      (impl->*handler)(request, std::move(response));
      return Pistache::Rest::Route::Result::Ok;
    };
  };
  Pistache::Rest::Routes::Post(r, "/publish", route(&Impl::publish));
  Pistache::Rest::Routes::Get(r, "/events", route(&Impl::events));
  Pistache::Rest::Routes::Get(r, "/stats", route(&Impl::stats));
  Pistache::Rest::Routes::Get(r, "/health", [](const Request&, ResponseWriter response) {
    send_json(response, Code::Ok, R"({"status":"ok"})");
    return Pistache::Rest::Route::Result::Ok;
  });
  r.addNotFoundHandler([](const Request& request, ResponseWriter response) {
    send_error(response, Code::Not_Found, "no such endpoint: " + request.resource());
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
  impl_->endpoint->setHandler(impl_->router.handler());
  impl_->endpoint->serveThreaded();
  spdlog::info("event=ingest_listening address={} port={}", cfg.http_address, port());
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
