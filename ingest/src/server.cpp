// The composition root: every piece of ingest is made and wired here, in the
// order each needs the others, and taken apart in the reverse order.
#include "ingest/server.hpp"

#include <thread>

#include <pqxx/pqxx>

#include "api/api.hpp"
#include "health/broker_admin.hpp"
#include "health/dependency_monitor.hpp"
#include "health/readiness.hpp"
#include "http/server.hpp"
#include "ingest/event_store.hpp"
#include "ingest/publish_service.hpp"
#include "ingest/publisher.hpp"
#include "metrics.hpp"
#include "pipeline/database.hpp"
#include "pipeline/jetstream.hpp"
#include "pipeline/logging.hpp"
#include "pipeline/migrations.hpp"
#include "queries/event_queries.hpp"
#include "queries/stats_service.hpp"
#include "queries/worker_pool.hpp"
#include "subscriptions/hub_metrics.hpp"
#include "subscriptions/subscription_hub.hpp"

namespace ingest {
namespace {

// EventStore as each service sees it. While the health check finds
// PostgreSQL silent, every read fails at once (the services answer 503)
// instead of waiting for its own deadline.
class StoreSide final : public EventReader, public CounterReader, public StoredEventSource {
 public:
  StoreSide(EventStore& store, const DependencyMonitor& monitor)
      : store_(store), monitor_(monitor) {}
  bool schema_ready() override {
    answering();
    return store_.schema_ready();
  }
  EventPage events(const EventQuery& query) override {
    answering();
    return store_.events(query);
  }
  PipelineCounters counters() override {
    answering();
    return store_.counters();
  }
  EventRun events_between(EventPosition after, EventPosition upto, std::size_t limit,
                          std::size_t max_bytes, const std::string& prefix) override {
    answering();
    return store_.events_between(after, upto, limit, max_bytes, prefix);
  }
  std::optional<EventPosition> before_stored_since(std::int64_t micros) override {
    answering();
    return store_.before_stored_since(micros);
  }

 private:
  void answering() const {
    if (monitor_.database().silent) {
      throw pqxx::broken_connection("postgres is not responding (health check); retry later");
    }
  }
  EventStore& store_;
  const DependencyMonitor& monitor_;
};

// The health check of PostgreSQL: SELECT 1 on a connection of its own
// (never one a query holds), then whether the schema is there.
class DatabaseCheck {
 public:
  explicit DatabaseCheck(std::string url) : url_(std::move(url)) {}
  DependencyState operator()() {
    DependencyState state;
    try {
      if (!conn_ || !conn_->is_open()) conn_ = std::make_unique<pqxx::connection>(url_);
      const pipeline::db::Deadline deadline(*conn_, kCheckDeadline);
      pqxx::nontransaction tx(*conn_);
      tx.exec("SELECT 1");
      state.answered = true;
      if (!schema_) {
        schema_ =
            tx.exec("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0].as<bool>() &&
            tx.exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0].as<int>() >=
                pipeline::embedded_migrations().back().version;
      }
      state.detail = schema_;
      if (schema_) {
        // Every partition of events, indexes and TOAST included (a stat of
        // each file, no scan).
        state.events_bytes =
            tx.exec(
                  "SELECT COALESCE(SUM(pg_total_relation_size(inhrelid)), 0)::bigint "
                  "FROM pg_inherits WHERE inhparent = 'events'::regclass")[0][0]
                .as<std::int64_t>();
      }
    } catch (const std::exception&) {
      conn_.reset();
      state.answered = false;
    }
    return state;
  }

 private:
  static constexpr auto kCheckDeadline = std::chrono::milliseconds(1500);
  std::string url_;
  std::unique_ptr<pqxx::connection> conn_;
  bool schema_ = false;
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
  limits.connection_buffer_bytes = cfg.connection_buffer_bytes;
  limits.threads = cfg.http_threads;
  return limits;
}

HubSettings hub_settings(const IngestConfig& cfg) {
  HubSettings settings;
  settings.poll_interval = cfg.subscribe_poll_interval;
  settings.heartbeat = cfg.subscribe_heartbeat;
  settings.buffer_events = cfg.subscribe_buffer_events;
  settings.buffer_bytes = cfg.subscribe_buffer_bytes;
  settings.slow_after = cfg.subscribe_slow_timeout;
  settings.round_events = cfg.subscribe_round_events;
  settings.round_bytes = cfg.subscribe_round_bytes;
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

// How often PostgreSQL and the broker are checked, and how long a check may
// take before the dependency counts as not responding: /ready answers at
// once with what the last check found, well within a probe's 1 s.
constexpr auto kHealthCheckInterval = std::chrono::milliseconds(500);
constexpr auto kSilentAfter = std::chrono::milliseconds(1000);

}  // namespace

struct IngestServer::Impl {
  explicit Impl(IngestConfig cfg) : config(std::move(cfg)) {
    const auto& common = config.common;
    nats_conn = pipeline::nats::connect(common.nats_url, "ingest", common.connect_timeout,
                                        /*send_asap=*/false, common.nats_ping_interval);
    ensure_broker_side(nats_conn.get(), common);
    publisher = std::make_unique<JetStreamPublisher>(
        nats_conn.get(), common.stream, config.publish_timeout, &metrics,
        JetStreamPublisher::Room{config.max_pending_publishes, config.max_pending_publish_bytes});
    // Ingest only reads PostgreSQL: the processor owns the schema. The
    // connection is made here so that a wrong DATABASE_URL fails the start.
    const std::string database_url = pipeline::db::session_url(
        common.database_url, {config.query_timeout, std::chrono::seconds(2)});
    pipeline::db::connect(database_url, common.connect_timeout);
    store = std::make_unique<EventStore>(common.database_url, config.db_pool_size,
                                         config.query_timeout, config.stats_max_topics);
    broker =
        std::make_unique<BrokerAdmin>(nats_conn.get(), common.stream.name, common.consumer.durable);
    monitor = std::make_unique<DependencyMonitor>(
        DependencyMonitor::Check{
            [check = std::make_shared<DatabaseCheck>(database_url)] { return (*check)(); }},
        DependencyMonitor::Check{[admin = broker.get()] {
          const BrokerStatus status = admin->probe();
          return DependencyState{status.answered, status.stream, status.connected, false};
        }},
        kHealthCheckInterval, kSilentAfter, common.events_max_bytes);
    monitor->start();
    store_side = std::make_unique<StoreSide>(*store, *monitor);
    publishing = std::make_unique<PublishService>(
        *publisher, config.limits, &metrics, [m = monitor.get()] { return m->storage_problem(); });
    queries = std::make_unique<EventQueryService>(*store_side, config.limits.max_field_length);
    stats = std::make_unique<StatsService>(*store_side, *broker);
    readiness = std::make_unique<ReadinessService>(*monitor, *monitor);
    hub_metrics = std::make_unique<HubMetrics>(*metrics.registry);
    hub = std::make_unique<SubscriptionHub>(*broker, *store_side, hub_settings(config),
                                            hub_metrics.get());
    workers = std::make_unique<WorkerPool>(config.query_threads);
    api = std::make_unique<IngestApi>(
        config,
        ApiServices{*publishing, *queries, *stats, *readiness, *hub, [this] { refresh_gauges(); }},
        metrics, *workers);
  }

  // Taken apart in the reverse order of the making, with the threads that
  // call into a piece stopped before it goes: the HTTP server first (no
  // request arrives or is answered any more), then the hub and the query
  // workers, the health checks, the publisher (it waits, bounded, for the
  // PubAcks still due, whose callbacks reach the publish service), and only
  // then the publish service and what it used.
  ~Impl() {
    if (http) http->stop();
    http.reset();
    hub->stop();
    api.reset();
    workers.reset();
    monitor->stop();
    publisher.reset();
    publishing.reset();
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void refresh_gauges() const {
    // The health checks' last word: natsConnection_Status takes the
    // connection's lock, which a write to a silent broker holds for up to
    // nats.c's write deadline (2 s).
    metrics.up.nats_up->Set(monitor->broker().connected ? 1 : 0);
    metrics.up.postgres_up->Set(monitor->database().answered ? 1 : 0);
    metrics.events_bytes->Set(static_cast<double>(monitor->database().events_bytes));
    metrics.events_max_bytes->Set(static_cast<double>(config.common.events_max_bytes));
  }

  IngestConfig config;
  IngestMetrics metrics;
  pipeline::nats::ConnectionPtr nats_conn;
  std::unique_ptr<JetStreamPublisher> publisher;
  std::unique_ptr<EventStore> store;
  std::unique_ptr<BrokerAdmin> broker;
  std::unique_ptr<DependencyMonitor> monitor;
  std::unique_ptr<StoreSide> store_side;
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
      },
      [](const http::Request& request) { return IngestApi::may_stream(request); });
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
