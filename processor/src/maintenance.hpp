#pragma once

#include <atomic>
#include <memory>

#include <pqxx/connection>

#include "metrics.hpp"
#include "processor/batch_writer.hpp"
#include "processor/config.hpp"
#include "stream_room.hpp"

namespace processor {

/// Off the workers' path, every 2 s: the gauges about the broker and the
/// database, a consumer deleted under running processors made again; every
/// prune_interval: the duplicate and marker records of messages the stream
/// no longer holds forgotten.
class Maintenance {
 public:
  Maintenance(natsConnection* conn, jsCtx* js, const ProcessorConfig& config,
              const pipeline::nats::ConsumerSettings& consumer, ProcessorMetrics& metrics);
  /// Until `stopping`.
  void run(const std::atomic<bool>& stopping);

 private:
  void watch_consumer();
  void watch_stream();
  void watch_database();
  /// Purges acked messages once the stream holds more than half of its max
  /// bytes (purge_below says where): replay history gives way to room for
  /// unprocessed events.
  void make_room(const jsStreamInfo& info);

  natsConnection* conn_;
  jsCtx* js_;
  const ProcessorConfig& config_;
  const pipeline::nats::ConsumerSettings& consumer_;
  ProcessorMetrics& metrics_;
  BatchWriter pruner_;
  std::unique_ptr<pqxx::connection> probe_;
  std::chrono::steady_clock::time_point next_prune_;
  StreamRoomState progress_;  ///< the consumer's ack floor and counts, as last read
};

}  // namespace processor
