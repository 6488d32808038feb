#include "maintenance.hpp"

#include <pqxx/nontransaction>

#include "pipeline/database.hpp"

#include "pipeline/logging.hpp"
#include "stream_room.hpp"
#include "worker.hpp"

namespace processor {

namespace log = pipeline::log;
using Clock = std::chrono::steady_clock;

Maintenance::Maintenance(natsConnection* conn, jsCtx* js, const ProcessorConfig& config,
                         const pipeline::nats::ConsumerSettings& consumer,
                         ProcessorMetrics& metrics)
    : conn_(conn),
      js_(js),
      config_(config),
      consumer_(consumer),
      metrics_(metrics),
      pruner_(config.common.database_url,
              config.common.statement_timeout + std::chrono::seconds(2)),
      next_prune_(Clock::now() + config.prune_interval) {}

void Maintenance::run(const std::atomic<bool>& stopping) {
  while (!stopping.load()) {
    metrics_.up.nats_up->Set(natsConnection_Status(conn_) == NATS_CONN_STATUS_CONNECTED);
    watch_consumer();
    watch_stream();
    watch_database();
    sleep_unless_stopping(stopping, std::chrono::seconds(2));
  }
}

void Maintenance::watch_consumer() {
  const auto& stream = config_.common.stream;
  jsConsumerInfo* ci = nullptr;
  const natsStatus status = js_GetConsumerInfo(&ci, js_, stream.name.c_str(),
                                               consumer_.durable.c_str(), nullptr, nullptr);
  if (status == NATS_NOT_FOUND) {
    // Deleted under us: pull requests to a missing consumer just go
    // unanswered, so no worker would notice. Make it again (deliver-all:
    // what it replays is recognised and not counted again).
    try {
      pipeline::nats::create_if_missing(js_, stream, consumer_);
      log::warn("consumer_recreated", {{"consumer", consumer_.durable}});
    } catch (const std::exception& e) {
      log::warn("consumer_recreate_failed", {{"error", log::first_line(e.what())}});
    }
    return;
  }
  if (status != NATS_OK) return;
  pipeline::nats::ConsumerInfoPtr info(ci);
  metrics_.consumer_pending->Set(static_cast<double>(info->NumPending));
  metrics_.consumer_ack_pending->Set(static_cast<double>(info->NumAckPending));
  metrics_.consumer_redelivered->Set(static_cast<double>(info->NumRedelivered));
  metrics_.consumer_max_ack_pending->Set(static_cast<double>(info->Config->MaxAckPending));
  progress_.ack_floor = info->AckFloor.Stream;
  progress_.num_pending = info->NumPending;
  progress_.num_ack_pending = static_cast<std::uint64_t>(info->NumAckPending);
}

void Maintenance::make_room(const jsStreamInfo& info) {
  StreamRoomState room = progress_;
  room.max_bytes = info.Config != nullptr ? info.Config->MaxBytes : -1;
  room.bytes = info.State.Bytes;
  room.messages = info.State.Msgs;
  room.first_seq = info.State.FirstSeq;
  const std::optional<std::uint64_t> below = purge_below(room);
  if (!below) return;
  jsOptions options;
  jsOptions_Init(&options);
  options.Stream.Purge.Sequence = *below;  // up to, not including
  jsErrCode error = static_cast<jsErrCode>(0);
  const natsStatus status =
      js_PurgeStream(js_, config_.common.stream.name.c_str(), &options, &error);
  if (status != NATS_OK) {
    log::warn("stream_purge_failed", {{"status", natsStatus_GetText(status)},
                                      {"error", static_cast<std::int64_t>(error)}});
    return;
  }
  metrics_.stream_purges->Increment();
  log::info("stream_purged", {{"below_sequence", *below},
                              {"ack_floor", room.ack_floor},
                              {"bytes_before", info.State.Bytes},
                              {"max_bytes", room.max_bytes}});
}

void Maintenance::watch_stream() {
  jsStreamInfo* si = nullptr;
  if (js_GetStreamInfo(&si, js_, config_.common.stream.name.c_str(), nullptr, nullptr) != NATS_OK) {
    return;
  }
  pipeline::nats::StreamInfoPtr info(si);
  metrics_.stream_messages->Set(static_cast<double>(info->State.Msgs));
  metrics_.stream_bytes->Set(static_cast<double>(info->State.Bytes));
  if (info->Config != nullptr) {
    metrics_.stream_max_bytes->Set(static_cast<double>(info->Config->MaxBytes));
  }
  make_room(*info);
  if (Clock::now() < next_prune_) return;
  next_prune_ = Clock::now() + config_.prune_interval;
  try {
    const std::size_t removed = pruner_.prune(info->Created, info->State.FirstSeq);
    metrics_.pruned->Increment(static_cast<double>(removed));
  } catch (const std::exception& e) {
    pruner_.reset();
    log::warn("prune_failed", {{"error", log::first_line(e.what())}});
  }
}

void Maintenance::watch_database() {
  try {
    if (!probe_ || !probe_->is_open()) {
      probe_ = std::make_unique<pqxx::connection>(config_.common.database_url);
    }
    const pipeline::db::Deadline deadline(*probe_, std::chrono::seconds(2));
    pqxx::nontransaction tx(*probe_);
    tx.exec("SELECT 1");
    metrics_.up.postgres_up->Set(1);
  } catch (const std::exception&) {
    probe_.reset();
    metrics_.up.postgres_up->Set(0);
  }
}

}  // namespace processor
