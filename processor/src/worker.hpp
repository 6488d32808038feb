#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>

#include "delivery_gaps.hpp"
#include "in_progress_ticker.hpp"
#include "message_source.hpp"
#include "metrics.hpp"
#include "processor/batch_writer.hpp"
#include "processor/config.hpp"
#include "processor/processor.hpp"
#include "processor/settlement.hpp"

namespace processor {

/// One worker thread: its own subscription and database connection. Each
/// turn: fetch a batch, check it belongs to the stream's incarnation, write
/// it (settle_batch decides ack or retry per message), then ack or NAK; and
/// store what the broker skipped over, when the deliveries show a gap.
class Worker {
 public:
  Worker(std::size_t index, jsCtx* js, const ProcessorConfig& config,
         const pipeline::nats::ConsumerSettings& consumer, ProcessorMetrics& metrics,
         ProcessorTotals& totals, DeliveryGaps& gaps, std::shared_ptr<const KeyFilters> filters,
         const std::atomic<bool>& stopping);

  /// Runs until `stopping`, then takes what a pull request delivered late.
  void run();

 private:
  bool ensure_subscribed();
  bool ensure_database();
  /// Fetches and handles one batch; false when nothing could be committed.
  bool turn();
  /// Writes one fetched batch and acks or NAKs each message.
  bool handle(FetchedBatch& batch);
  void report(const std::vector<IncomingMessage>& messages, const BatchSettlement& settled) const;
  /// Notes the batch's deliveries; a gap they reveal is to be repaired.
  void watch_for_gaps(const std::vector<IncomingMessage>& messages);
  /// Loads and stores what the broker skipped over (delivery_gaps.hpp).
  void repair_skipped();
  void drain_late_deliveries();
  std::chrono::milliseconds next_backoff();
  void back_off();

  std::size_t index_;
  const ProcessorConfig& config_;
  ProcessorMetrics& metrics_;
  ProcessorTotals& totals_;
  DeliveryGaps& gaps_;
  std::vector<SequenceGap> unrepaired_;
  const std::atomic<bool>& stopping_;
  MessageSource source_;
  BatchWriter writer_;
  InProgressTicker ticker_;
  RetryPolicy retry_;
  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point pull_request_expires_;
};

/// Sleeps up to `total`, waking early when `stopping` turns true.
void sleep_unless_stopping(const std::atomic<bool>& stopping, std::chrono::milliseconds total);

}  // namespace processor
