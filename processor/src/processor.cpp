#include "processor/processor.hpp"

#include <prometheus/exposer.h>

#include "delivery_gaps.hpp"
#include "key_filters.hpp"
#include "maintenance.hpp"
#include "metrics.hpp"
#include "pipeline/database.hpp"
#include "pipeline/logging.hpp"
#include "retention.hpp"
#include "worker.hpp"

namespace processor {

Processor::Processor(ProcessorConfig config)
    : config_(std::move(config)), metrics_(std::make_unique<ProcessorMetrics>()) {
  // Every session of the processor gets the time limits (statement
  // timeout, keepalives, connect timeout) unless DATABASE_URL sets them.
  config_.common.database_url = pipeline::db::session_url(
      config_.common.database_url, {config_.common.statement_timeout, std::chrono::seconds(5)});
  conn_ =
      pipeline::nats::connect(config_.common.nats_url, "processor", config_.common.connect_timeout,
                              /*send_asap=*/false, config_.common.nats_ping_interval);
  js_ = pipeline::nats::jetstream(conn_.get());
  const auto& common = config_.common;
  pipeline::nats::retry_setup("stream", common.connect_timeout,
                              [&] { pipeline::nats::ensure_stream(js_.get(), common.stream); });
  pipeline::nats::retry_setup("consumer", common.connect_timeout, [&] {
    consumer_ = pipeline::nats::ensure_consumer(js_.get(), common.stream, common.consumer);
  });
  auto db = pipeline::db::connect(config_.common.database_url, config_.common.connect_timeout);
  pipeline::db::apply_migrations(*db);
  // The partitions the workers will write into, before they start (another
  // processor may be making them: then its pass does).
  filters_ = std::make_shared<KeyFilters>(config_.partitions.key_filter_max_bytes);
  retention_ = std::make_unique<Retention>(config_, *metrics_, filters_);
  gaps_ = std::make_unique<DeliveryGaps>();
  retention_->pass(/*pack=*/false);
  if (config_.metrics_address != "off") {
    exposer_ = std::make_unique<prometheus::Exposer>(config_.metrics_address);
    exposer_->RegisterCollectable(metrics_->registry);
  }
}

std::uint16_t Processor::metrics_port() const {
  if (!exposer_) return 0;
  const auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : static_cast<std::uint16_t>(ports.front());
}

Processor::~Processor() { stop(); }

void Processor::start() {
  stopping_ = false;
  for (std::size_t i = 0; i < config_.workers; ++i) {
    workers_.emplace_back([this, i] {
      Worker(i, js_.get(), config_, consumer_, *metrics_, totals_, *gaps_, filters_, stopping_)
          .run();
    });
  }
  health_ = std::thread([this] {
    Maintenance(conn_.get(), js_.get(), config_, consumer_, *metrics_).run(stopping_);
  });
  retention_thread_ = std::thread([this] { retention_->run(stopping_); });
  pipeline::log::info("processor_started", {{"workers", config_.workers},
                                            {"batch_size", config_.batch_size},
                                            {"stream", config_.common.stream.name},
                                            {"consumer", consumer_.durable}});
}

void Processor::stop() {
  stopping_ = true;
  // A rebuild may take minutes: cancelled, so that the stop does not wait.
  if (retention_ && retention_thread_.joinable()) retention_->interrupt();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  workers_.clear();
  if (health_.joinable()) health_.join();
  if (retention_thread_.joinable()) retention_thread_.join();
  // The last batches' acks may still sit in the client's buffer: send them
  // before the connection goes, so they are not redelivered after a restart.
  if (conn_) natsConnection_FlushTimeout(conn_.get(), 2000);
}

}  // namespace processor
