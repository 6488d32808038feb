#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "http_client.hpp"
#include "ingest/config.hpp"
#include "ingest/server.hpp"
#include "processor/config.hpp"
#include "processor/processor.hpp"
#include "servers.hpp"

namespace testsupport {

/// The PostgreSQL cluster the tests share (initdb takes seconds): CTest's
/// fixture cluster when PIPELINE_TEST_POSTGRES names its url file
/// (tests/support/postgres-fixture.sh), else one this process starts. Each
/// test gets a database of its own.
class SharedPostgres {
 public:
  SharedPostgres();
  /// A connection string for `database`.
  std::string url(const std::string& database = "postgres") const;
  /// Creates an empty database with a name no other process uses.
  std::string create_database();

 private:
  std::unique_ptr<PostgresCluster> own_;
  std::string base_;  ///< the fixture's connection string, without dbname
};
SharedPostgres& shared_postgres();

/// A whole pipeline per test: its own nats-server, its own database, and the
/// real ingest and processor code running in this process.
class PipelineTest : public ::testing::Test {
 protected:
  PipelineTest();
  void SetUp() override;
  void TearDown() override;

  /// Configurations the services start with; tests may change them before
  /// start_ingest() / start_processor().
  pipeline::CommonSettings common_settings() const;
  ingest::IngestConfig ingest_config();
  processor::ProcessorConfig processor_config();

  void start_ingest();
  void stop_ingest();
  void start_processor();
  void stop_processor();

  HttpClient& http();
  HttpResponse publish(const nlohmann::json& body);
  /// POST /publish with a body of any format and headers of its own.
  HttpResponse post(const std::string& body, const std::string& content_type,
                    const std::map<std::string, std::string>& headers = {});
  /// start_processor() then start_ingest().
  void start_all();
  nlohmann::json stats();
  /// Polls /stats until received == unique_processed + duplicate_dropped with
  /// nothing pending and `unique` events stored; fails the test on timeout.
  nlohmann::json wait_for_idle(std::int64_t unique,
                               std::chrono::milliseconds timeout = std::chrono::seconds(60));
  /// Rows in the events table, counted in SQL.
  std::int64_t count_rows(const std::string& where = "TRUE");

  static nlohmann::json event(const std::string& topic, const std::string& id,
                              nlohmann::json payload = nlohmann::json::object());

  std::unique_ptr<NatsServer> nats_;
  std::string database_;
  pipeline::nats::StreamSettings stream_;
  pipeline::nats::ConsumerSettings consumer_;
  std::string api_tokens_;
  double rate_limit_ = 0;
  std::size_t rate_burst_ = 100;
  std::chrono::milliseconds publish_timeout_{5000};
  std::chrono::milliseconds header_timeout_{10000};
  bool apply_schema_ = true;  ///< start_ingest() applies the migrations first
  /// Changes to ingest's configuration (after the fixture's own).
  std::function<void(ingest::IngestConfig&)> configure_ingest_;
  /// Changes to the processor's configuration (after the fixture's own); the
  /// partitions start_ingest() makes follow it too.
  std::function<void(processor::ProcessorConfig&)> configure_processor_;
  /// The processor's /metrics listener: off unless a test reads it (its
  /// civetweb server takes 1.7 s to stop).
  bool processor_metrics_ = false;  ///< start_ingest() applies the migrations first
  std::unique_ptr<ingest::IngestServer> ingest_;
  std::unique_ptr<processor::Processor> processor_;
  std::unique_ptr<HttpClient> http_;
};

}  // namespace testsupport
