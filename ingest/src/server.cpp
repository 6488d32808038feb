// The composition root: every piece of ingest is made and wired here, in the
// order each needs the others, and taken apart in the reverse order.
#include "ingest/server.hpp"

#include <thread>

#include "api.hpp"
#include "broker_admin.hpp"
#include "event_queries.hpp"
#include "http/server.hpp"
#include "hub_metrics.hpp"
#include "ingest/event_store.hpp"
#include "ingest/publish_service.hpp"
#include "ingest/publisher.hpp"
#include "metrics.hpp"
#include "pipeline/database.hpp"
#include "pipeline/jetstream.hpp"
#include "pipeline/logging.hpp"
#include "readiness.hpp"
#include "stats_service.hpp"
#include "subscription_hub.hpp"
#include "worker_pool.hpp"

namespace ingest {
namespace {

// EventStore as each service sees it.
class StoreSide final : public EventReader,
                        public CounterReader,
                        public DatabaseProbe,
                        public StoredEventSource {
 public:
  explicit StoreSide(EventStore& store) : store_(store) {}
  bool schema_ready() override { return store_.schema_ready(); }
  EventPage events(const EventQuery& query) override { return store_.events(query); }
  PipelineCounters counters() override { return store_.counters(); }
  bool reachable() override { return store_.reachable(); }
  std::vector<StoredEvent> events_between(EventPosition after, EventPosition upto,
                                          std::size_t limit, const std::string& prefix) override {
    return store_.events_between(after, upto, limit, prefix);
  }
  std::optional<EventPosition> before_stored_since(std::int64_t micros) override {
    return store_.before_stored_since(micros);
  }

 private:
  EventStore& store_;
};

http::ServerLimits http_limits(const IngestConfig& cfg) {
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
  return limits;
}

HubSettings hub_settings(const IngestConfig& cfg) {
  HubSettings settings;
  settings.poll_interval = cfg.subscribe_poll_interval;
  settings.heartbeat = cfg.subscribe_heartbeat;
  settings.buffer_events = cfg.subscribe_buffer_events;
  settings.max_clients = cfg.subscribe_max_clients;
  return settings;
}

// The stream, and the consumer too so that /stats can count the backlog
// before any processor has started; whichever process comes first creates
// both. The consumer is not fatal: accepting events does not need it, and
// the processor makes sure of it.
void ensure_broker_side(natsConnection* conn, const pipeline::CommonSettings& common) {
  auto js = pipeline::nats::jetstream(conn);
  pipeline::nats::retry_setup("stream", common.connect_timeout,
                              [&] { pipeline::nats::ensure_stream(js.get(), common.stream); });
  try {
    pipeline::nats::retry_setup("consumer", common.connect_timeout, [&] {
      pipeline::nats::ensure_consumer(js.get(), common.stream, common.consumer);
    });
  } catch (const pipeline::nats::NatsError& e) {
    pipeline::log::warn("consumer_not_ensured", {{"error", pipeline::log::first_line(e.what())}});
  }
}

}  // namespace

struct IngestServer::Impl {
  explicit Impl(IngestConfig cfg) : config(std::move(cfg)) {
    const auto& common = config.common;
    nats_conn = pipeline::nats::connect(common.nats_url, "ingest", common.connect_timeout,
                                        /*send_asap=*/false);
    ensure_broker_side(nats_conn.get(), common);
    publisher = std::make_unique<JetStreamPublisher>(nats_conn.get(), common.stream,
                                                     config.publish_timeout, &metrics);
    // Ingest only reads PostgreSQL: the processor owns the schema. The
    // connection is made here so that a wrong DATABASE_URL fails the start.
    pipeline::db::connect(common.database_url, common.connect_timeout);
    store = std::make_unique<EventStore>(common.database_url, config.db_pool_size);
    store_side = std::make_unique<StoreSide>(*store);
    broker =
        std::make_unique<BrokerAdmin>(nats_conn.get(), common.stream.name, common.consumer.durable);
    publishing = std::make_unique<PublishService>(*publisher, config.limits, &metrics);
    queries = std::make_unique<EventQueryService>(*store_side, config.limits.max_field_length);
    stats = std::make_unique<StatsService>(*store_side, *broker);
    readiness = std::make_unique<ReadinessService>(*broker, *store_side);
    hub_metrics = std::make_unique<HubMetrics>(*metrics.registry);
    hub = std::make_unique<SubscriptionHub>(*broker, *store_side, hub_settings(config),
                                            hub_metrics.get());
    workers = std::make_unique<WorkerPool>(config.query_threads);
    api = std::make_unique<IngestApi>(
        config,
        ApiServices{*publishing, *queries, *stats, *readiness, *hub, [this] { refresh_gauges(); }},
        metrics, *workers);
  }

  void refresh_gauges() const {
    metrics.up.nats_up->Set(broker->connected() ? 1 : 0);
    metrics.up.postgres_up->Set(store->reachable() ? 1 : 0);
  }

  IngestConfig config;
  IngestMetrics metrics;
  pipeline::nats::ConnectionPtr nats_conn;
  std::unique_ptr<JetStreamPublisher> publisher;
  std::unique_ptr<EventStore> store;
  std::unique_ptr<StoreSide> store_side;
  std::unique_ptr<BrokerAdmin> broker;
  std::unique_ptr<PublishService> publishing;
  std::unique_ptr<EventQueryService> queries;
  std::unique_ptr<StatsService> stats;
  std::unique_ptr<ReadinessService> readiness;
  std::unique_ptr<HubMetrics> hub_metrics;
  std::unique_ptr<SubscriptionHub> hub;
  std::unique_ptr<WorkerPool> workers;
  std::unique_ptr<IngestApi> api;
  std::unique_ptr<http::HttpServer> http;  // last made, first gone
};

const std::vector<IngestServer::Route>& IngestServer::routes() {
  static const std::vector<Route> kRoutes = [] {
    std::vector<Route> out;
    for (const auto& route : IngestApi::routes()) {
      out.push_back({route.method, route.path, route.access == IngestApi::Access::kPublic});
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
  IngestApi* api = impl_->api.get();
  impl_->http = std::make_unique<http::HttpServer>(
      cfg.http_address, static_cast<std::uint16_t>(cfg.http_port), http_limits(cfg),
      [api](http::Request&& request, http::Responder responder) {
        api->dispatch(std::move(request), std::move(responder));
      });
  impl_->http->start();
  impl_->hub->start();
  pipeline::log::info("ingest_listening",
                      {{"address", cfg.http_address},
                       {"port", port()},
                       {"auth", api->auth_enabled() ? "on" : "off"},
                       {"rate_limit", api->rate_limit_enabled() ? "on" : "off"}});
}

void IngestServer::drain(std::chrono::milliseconds timeout) {
  impl_->api->start_draining();
  // Subscriptions end at once (cleanly: the clients resume elsewhere); the
  // requests in flight get their time.
  impl_->hub->stop();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto in_flight = [&] { return impl_->metrics.in_flight->Value(); };
  while (in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pipeline::log::info("ingest_drained", {{"in_flight", in_flight()}});
  stop();
}

void IngestServer::stop() {
  if (impl_) impl_->hub->stop();
  if (impl_ && impl_->http) {
    impl_->http->stop();
    impl_->http.reset();
  }
}

std::uint16_t IngestServer::port() const { return impl_->http ? impl_->http->port() : 0; }

}  // namespace ingest
