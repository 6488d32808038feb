#include "pipeline_fixture.hpp"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <pqxx/pqxx>
#include <random>
#include <stdexcept>

#include "pipeline/database.hpp"
#include "pipeline/logging.hpp"
#include "processor/partitions.hpp"

namespace testsupport {

SharedPostgres::SharedPostgres() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): read once, before the tests' threads
  const char* file = std::getenv("PIPELINE_TEST_POSTGRES");
  if (file == nullptr || *file == '\0') {
    own_ = std::make_unique<PostgresCluster>();
    return;
  }
  std::ifstream in(file);
  if (!std::getline(in, base_) || base_.empty()) {
    throw std::runtime_error(std::string("PIPELINE_TEST_POSTGRES names ") + file +
                             ", which holds no connection string (did the fixture start?)");
  }
}

std::string SharedPostgres::url(const std::string& database) const {
  return own_ ? own_->url(database) : base_ + " dbname=" + database;
}

std::string SharedPostgres::create_database() {
  if (own_) return own_->create_database();
  // Processes share the cluster: the name carries the pid and a random part.
  static std::mt19937_64 random(std::random_device{}());
  static int count = 0;
  std::string name = "test_" + std::to_string(::getpid()) + "_" + std::to_string(++count) + "_" +
                     std::to_string(random() % 1000000);
  pqxx::connection conn(url());
  pqxx::nontransaction tx(conn);
  tx.exec("CREATE DATABASE " + name);
  return name;
}

SharedPostgres& shared_postgres() {
  static SharedPostgres cluster;
  return cluster;
}

PipelineTest::PipelineTest() {
  // Short enough that a redelivery after a broker crash comes within a test.
  consumer_.ack_wait = std::chrono::seconds(3);
}

void PipelineTest::SetUp() {
  static const bool logging = [] {
    // TEST_LOG_LEVEL=info shows what the services log (warnings only by default).
    const char* level = std::getenv("TEST_LOG_LEVEL");  // NOLINT(concurrency-mt-unsafe)
    pipeline::init_logging("test", level != nullptr ? level : "warn");
    return true;
  }();
  (void)logging;
  nats_ = std::make_unique<NatsServer>();
  database_ = shared_postgres().create_database();
}

void PipelineTest::TearDown() {
  http_.reset();
  stop_ingest();
  stop_processor();
  nats_.reset();
}

pipeline::CommonSettings PipelineTest::common_settings() const {
  pipeline::CommonSettings common;
  common.nats_url = nats_->url();
  common.database_url = shared_postgres().url(database_);
  common.stream = stream_;
  common.consumer = consumer_;
  common.connect_timeout = std::chrono::seconds(20);
  return common;
}

ingest::IngestConfig PipelineTest::ingest_config() {
  ingest::IngestConfig config;
  config.common = common_settings();
  config.http_address = "127.0.0.1";
  config.http_port = 0;
  config.http_threads = 4;
  config.api_tokens = api_tokens_;
  config.rate_limit_rps = rate_limit_;
  config.rate_limit_burst = rate_burst_;
  config.publish_timeout = publish_timeout_;
  config.header_timeout = header_timeout_;
  config.subscribe_poll_interval = std::chrono::milliseconds(20);
  if (configure_ingest_) configure_ingest_(config);
  return config;
}

processor::ProcessorConfig PipelineTest::processor_config() {
  processor::ProcessorConfig config;
  config.common = common_settings();
  config.workers = 2;
  config.batch_size = 200;
  config.fetch_wait = std::chrono::milliseconds(100);
  config.retry_delay = std::chrono::milliseconds(100);
  // Any free port when on: tests run several processors.
  config.metrics_address = processor_metrics_ ? "127.0.0.1:0" : "off";
  if (configure_processor_) configure_processor_(config);
  return config;
}

void PipelineTest::start_ingest() {
  // Ingest never writes the schema: the processor does when it starts. Most
  // tests start ingest first, so the schema is made here as a processor
  // would have made it, unless a test wants the database bare.
  if (apply_schema_) {
    pqxx::connection conn(shared_postgres().url(database_));
    pipeline::db::apply_migrations(conn);
    processor::ensure_partitions(conn, processor_config().partitions);
  }
  ingest_ = std::make_unique<ingest::IngestServer>(ingest_config());
  ingest_->start();
  http_.reset();
}

void PipelineTest::stop_ingest() {
  http_.reset();
  ingest_.reset();
}

void PipelineTest::start_processor() {
  processor_ = std::make_unique<processor::Processor>(processor_config());
  processor_->start();
}

void PipelineTest::stop_processor() { processor_.reset(); }

HttpClient& PipelineTest::http() {
  if (!http_) http_ = std::make_unique<HttpClient>(ingest_->port());
  return *http_;
}

HttpResponse PipelineTest::publish(const nlohmann::json& body) {
  return http().post("/publish", body.dump());
}

HttpResponse PipelineTest::post(const std::string& body, const std::string& content_type,
                                const std::map<std::string, std::string>& headers) {
  return http().request("POST", "/publish", body, content_type, headers);
}

void PipelineTest::start_all() {
  start_processor();
  start_ingest();
}

nlohmann::json PipelineTest::stats() {
  const HttpResponse response = http().get("/stats");
  EXPECT_EQ(response.status, 200) << response.body;
  return nlohmann::json::parse(response.body);
}

nlohmann::json PipelineTest::wait_for_idle(std::int64_t unique, std::chrono::milliseconds timeout) {
  nlohmann::json last;
  const bool idle = wait_until(
      [&] {
        last = stats();
        return last["pending"] == 0 && last["unique_processed"] == unique &&
               last["received"] == last["unique_processed"].get<std::int64_t>() +
                                       last["duplicate_dropped"].get<std::int64_t>();
      },
      timeout);
  EXPECT_TRUE(idle) << "pipeline not idle in time; last /stats: " << last.dump();
  return last;
}

std::int64_t PipelineTest::count_rows(const std::string& where) {
  pqxx::connection conn(shared_postgres().url(database_));
  pqxx::read_transaction tx(conn);
  return tx.exec("SELECT count(*) FROM events WHERE " + where)[0][0].as<std::int64_t>();
}

nlohmann::json PipelineTest::event(const std::string& topic, const std::string& id,
                                   nlohmann::json payload) {
  return {{"topic", topic},
          {"event_id", id},
          {"timestamp", "2026-11-24T10:00:00Z"},
          {"source", "tests"},
          {"payload", std::move(payload)}};
}

}  // namespace testsupport
