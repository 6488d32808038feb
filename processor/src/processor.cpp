#include "processor/processor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <pqxx/except>
#include <pqxx/nontransaction>

#include "message_source.hpp"
#include "metrics.hpp"
#include "pipeline/database.hpp"
#include "pipeline/fault.hpp"
#include "pipeline/timestamp.hpp"
#include "processor/batch_writer.hpp"
#include "processor/settlement.hpp"

#include <prometheus/exposer.h>

namespace processor {
namespace {

using Clock = std::chrono::steady_clock;
using pipeline::db::FailureKind;

constexpr auto kMaxBackoff = std::chrono::milliseconds(5000);
// A pull request outlives its Fetch by at most this (nats.c asks the broker
// to expire it 10 ms before the Fetch gives up; the broker may be late).
constexpr auto kPullRequestMargin = std::chrono::milliseconds(100);

// Tells the broker "still working on these" every `interval` while a batch is
// being written, so a slow transaction (a database under load, a lock wait)
// does not run past AckWait and get the batch redelivered to another worker.
class InProgressTicker {
 public:
  InProgressTicker(std::chrono::milliseconds interval, prometheus::Counter* sent)
      : interval_(interval), sent_(sent), thread_([this] { run(); }) {}
  ~InProgressTicker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  InProgressTicker(const InProgressTicker&) = delete;
  InProgressTicker& operator=(const InProgressTicker&) = delete;

  void begin(FetchedBatch* batch) {
    std::lock_guard<std::mutex> lock(mutex_);
    batch_ = batch;
    cv_.notify_all();
  }
  /// After end() returns the ticker no longer touches the batch.
  void end() {
    std::lock_guard<std::mutex> lock(mutex_);
    batch_ = nullptr;
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!quit_) {
      if (batch_ == nullptr) {
        cv_.wait(lock, [&] { return quit_ || batch_ != nullptr; });
        continue;
      }
      FetchedBatch* watched = batch_;
      if (cv_.wait_for(lock, interval_, [&] { return quit_ || batch_ != watched; })) continue;
      for (int i = 0; i < watched->size(); ++i) natsMsg_InProgress((*watched)[i], nullptr);
      sent_->Increment(watched->size());
    }
  }

  std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable cv_;
  FetchedBatch* batch_ = nullptr;
  bool quit_ = false;
  prometheus::Counter* sent_;
  std::thread thread_;
};

// Sleeps up to `total`, waking early when `stopping` turns true.
void sleep_unless_stopping(const std::atomic<bool>& stopping, std::chrono::milliseconds total) {
  const auto until = Clock::now() + total;
  while (!stopping.load() && Clock::now() < until) {
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(50), until - Clock::now()));
  }
}

std::chrono::milliseconds next_backoff(std::chrono::milliseconds current) {
  return std::min(kMaxBackoff, std::max(std::chrono::milliseconds(100), current * 2));
}

prometheus::Counter* retry_counter(ProcessorMetrics& metrics, FailureKind kind) {
  switch (kind) {
    case FailureKind::kUnavailable:
      return metrics.retry_unavailable;
    case FailureKind::kOutcomeUnknown:
      return metrics.retry_outcome_unknown;
    case FailureKind::kRetryLater:
    case FailureKind::kNeverStorable:  // its dead letter failed: retried too
      break;
  }
  return metrics.retry_later;
}

// Counts the settled messages in the metrics and the totals.
void record(const std::vector<IncomingMessage>& messages, const BatchSettlement& settled,
            ProcessorMetrics& metrics, ProcessorTotals& totals) {
  const auto committed = pipeline::now_utc();
  std::array<std::size_t, kStoreOutcomes> counts{};
  std::size_t retried = 0;
  for (std::size_t i = 0; i < settled.messages.size(); ++i) {
    const Settlement& s = settled.messages[i];
    if (!s.outcome) {
      ++retried;
      continue;
    }
    ++counts[static_cast<std::size_t>(*s.outcome)];
    const bool stored =
        *s.outcome == StoreOutcome::kStored || *s.outcome == StoreOutcome::kReplaced;
    if (stored && messages[i].published_micros > 0) {
      metrics.end_to_end_seconds->Observe(
          static_cast<double>(committed.micros_since_epoch - messages[i].published_micros) / 1e6);
    }
  }
  for (std::size_t i = 0; i < kStoreOutcomes; ++i) {
    metrics.outcomes[i]->Increment(static_cast<double>(counts[i]));
  }
  const auto count = [&](StoreOutcome o) { return counts[static_cast<std::size_t>(o)]; };
  totals.stored += count(StoreOutcome::kStored);
  totals.replaced += count(StoreOutcome::kReplaced);
  totals.duplicates += count(StoreOutcome::kDuplicate);
  totals.redelivered += count(StoreOutcome::kRedelivered);
  totals.dead_lettered += count(StoreOutcome::kDeadLettered);
  totals.retried += retried;
  for (const FailureKind kind : settled.failures) {
    if (kind == FailureKind::kNeverStorable) continue;  // dead-lettered, not retried
    retry_counter(metrics, kind)->Increment();
    ++totals.transient_errors;
  }
  totals.batches += settled.committed_batches;
}

}  // namespace

Processor::Processor(ProcessorConfig config)
    : config_(std::move(config)), metrics_(std::make_unique<ProcessorMetrics>()) {
  conn_ =
      pipeline::nats::connect(config_.common.nats_url, "processor", config_.common.connect_timeout);
  js_ = pipeline::nats::jetstream(conn_.get());
  const auto& common = config_.common;
  pipeline::nats::retry_setup("stream", common.connect_timeout,
                              [&] { pipeline::nats::ensure_stream(js_.get(), common.stream); });
  pipeline::nats::retry_setup("consumer", common.connect_timeout, [&] {
    consumer_ = pipeline::nats::ensure_consumer(js_.get(), common.stream, common.consumer);
  });
  auto db = pipeline::db::connect(config_.common.database_url, config_.common.connect_timeout);
  pipeline::db::apply_migrations(*db);
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

// Every 2 s: the gauges about the broker and the database. Every
// prune_interval: forgets the duplicate and marker records of messages the
// stream no longer holds (off the workers' path).
void Processor::run_health() {
  const auto& stream = config_.common.stream;
  std::unique_ptr<pqxx::connection> db;
  BatchWriter pruner(config_.common.database_url);
  auto next_prune = Clock::now() + config_.prune_interval;
  while (!stopping_.load()) {
    metrics_->up.nats_up->Set(natsConnection_Status(conn_.get()) == NATS_CONN_STATUS_CONNECTED);
    jsConsumerInfo* ci = nullptr;
    const natsStatus consumer_status = js_GetConsumerInfo(
        &ci, js_.get(), stream.name.c_str(), consumer_.durable.c_str(), nullptr, nullptr);
    if (consumer_status == NATS_NOT_FOUND) {
      // Deleted under us: pull requests to a missing consumer just go
      // unanswered, so no worker would notice. Make it again (deliver-all:
      // what it replays is recognised and not counted again).
      try {
        pipeline::nats::create_if_missing(js_.get(), stream, consumer_);
        spdlog::warn("event=consumer_recreated consumer={}", consumer_.durable);
      } catch (const std::exception& e) {
        spdlog::warn("event=consumer_recreate_failed error=\"{}\"",
                     std::string(e.what()).substr(0, 200));
      }
    } else if (consumer_status == NATS_OK) {
      pipeline::nats::ConsumerInfoPtr info(ci);
      metrics_->consumer_pending->Set(static_cast<double>(info->NumPending));
      metrics_->consumer_ack_pending->Set(static_cast<double>(info->NumAckPending));
      metrics_->consumer_redelivered->Set(static_cast<double>(info->NumRedelivered));
      metrics_->consumer_max_ack_pending->Set(static_cast<double>(info->Config->MaxAckPending));
    }
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, js_.get(), stream.name.c_str(), nullptr, nullptr) == NATS_OK) {
      pipeline::nats::StreamInfoPtr info(si);
      metrics_->stream_messages->Set(static_cast<double>(info->State.Msgs));
      metrics_->stream_bytes->Set(static_cast<double>(info->State.Bytes));
      if (Clock::now() >= next_prune) {
        next_prune = Clock::now() + config_.prune_interval;
        try {
          const std::size_t removed = pruner.prune(info->Created, info->State.FirstSeq);
          metrics_->pruned->Increment(static_cast<double>(removed));
        } catch (const std::exception& e) {
          pruner.reset();
          spdlog::warn("event=prune_failed error=\"{}\"", std::string(e.what()).substr(0, 200));
        }
      }
    }
    try {
      if (!db || !db->is_open())
        db = std::make_unique<pqxx::connection>(config_.common.database_url);
      pqxx::nontransaction tx(*db);
      tx.exec("SELECT 1");
      metrics_->up.postgres_up->Set(1);
    } catch (const std::exception&) {
      db.reset();
      metrics_->up.postgres_up->Set(0);
    }
    sleep_unless_stopping(stopping_, std::chrono::seconds(2));
  }
}

Processor::~Processor() { stop(); }

void Processor::start() {
  stopping_ = false;
  for (std::size_t i = 0; i < config_.workers; ++i) {
    workers_.emplace_back([this, i] { run_worker(i); });
  }
  health_ = std::thread([this] { run_health(); });
  spdlog::info("event=processor_started workers={} batch_size={} stream={} consumer={}",
               config_.workers, config_.batch_size, config_.common.stream.name, consumer_.durable);
}

void Processor::stop() {
  stopping_ = true;
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  workers_.clear();
  if (health_.joinable()) health_.join();
  // The last batches' acks may still sit in the client's buffer: send them
  // before the connection goes, so they are not redelivered after a restart.
  if (conn_) natsConnection_FlushTimeout(conn_.get(), 2000);
}

// One worker: fetch a batch, check it belongs to the stream's incarnation,
// write it (settle_batch decides ack or retry per message), then ack or NAK.
void Processor::run_worker(std::size_t index) {
  MessageSource source(js_.get(), config_.common.stream, consumer_);
  BatchWriter writer(config_.common.database_url);
  InProgressTicker ticker(std::max(std::chrono::milliseconds(100), consumer_.ack_wait / 3),
                          metrics_->in_progress_acks);
  const RetryPolicy retry{config_.retry_delay, config_.max_retry_delay};
  std::chrono::milliseconds backoff{0};
  auto pull_request_expires = Clock::now();

  // Writes one fetched batch and settles each message. Returns false when
  // nothing could be committed (the caller backs off).
  const auto handle = [&](FetchedBatch& batch) {
    totals_.fetched += static_cast<std::uint64_t>(batch.size());
    metrics_->fetched->Increment(batch.size());
    metrics_->batch_size->Observe(batch.size());
    const std::vector<IncomingMessage> messages = source.decode(batch);
    if (!source.same_incarnation()) {
      // Fetched from a consumer of a stream created after this subscription
      // was made: the positions would be wrong. Deliver them again to a new
      // subscription.
      for (int i = 0; i < batch.size(); ++i) natsMsg_Nak(batch[i], nullptr);
      metrics_->retry_incarnation->Increment();
      totals_.retried += static_cast<std::uint64_t>(batch.size());
      spdlog::warn("event=stream_incarnation_changed worker={} messages={} action=resubscribe",
                   index, batch.size());
      source.reset();
      return false;
    }
    ticker.begin(&batch);
    const auto started = Clock::now();
    const BatchSettlement settled = settle_batch(writer, messages, retry);
    ticker.end();  // no in-progress ack after the acks
    metrics_->transaction_seconds->Observe(
        std::chrono::duration<double>(Clock::now() - started).count());
    record(messages, settled, *metrics_, totals_);
    if (!settled.failures.empty()) {
      std::size_t retried = 0;
      for (const auto& s : settled.messages) retried += s.outcome ? 0 : 1;
      // The first line of the error (the server's message; libpq adds more).
      const std::string& error = settled.first_error;
      spdlog::warn(
          "event=batch_failed worker={} messages={} split={} retrying={} failure={} error=\"{}\"",
          index, messages.size(), settled.split, retried,
          pipeline::db::failure_name(settled.failures.front()),
          error.substr(0, std::min<std::size_t>(error.find('\n'), 300)));
    }
    for (std::size_t i = 0; i < messages.size(); ++i) {
      if (settled.messages[i].outcome == StoreOutcome::kDeadLettered) {
        spdlog::warn("event=dead_lettered worker={} stream_seq={} request_id={}", index,
                     messages[i].position.seq, messages[i].request_id);
      }
    }
    pipeline::fault::crash_point("processor.after_commit_before_ack");
    bool any_committed = false;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      natsMsg* msg = batch[static_cast<int>(i)];
      const Settlement& s = settled.messages[i];
      if (s.action == Settlement::Action::kAck) {
        natsMsg_Ack(msg, nullptr);
        any_committed = true;
      } else {
        natsMsg_NakWithDelay(msg, s.delay.count(), nullptr);
      }
    }
    return any_committed || settled.failures.empty();
  };

  while (!stopping_.load()) {
    if (!source.subscribed()) {
      try {
        source.subscribe();
        if (backoff.count() > 0) spdlog::info("event=worker_subscribed worker={}", index);
        backoff = std::chrono::milliseconds(0);
      } catch (const std::exception& e) {
        ++totals_.transient_errors;
        metrics_->retry_fetch->Increment();
        backoff = next_backoff(backoff);
        spdlog::warn("event=worker_subscribe_failed worker={} retry_in_ms={} error=\"{}\"", index,
                     backoff.count(), std::string(e.what()).substr(0, 200));
        sleep_unless_stopping(stopping_, backoff);
        continue;
      }
    }
    if (!writer.connected()) {
      try {
        writer.connect();
        if (backoff.count() > 0) spdlog::info("event=postgres_reconnected worker={}", index);
        backoff = std::chrono::milliseconds(0);
      } catch (const std::exception& e) {
        ++totals_.transient_errors;
        metrics_->retry_unavailable->Increment();
        metrics_->up.postgres_up->Set(0);
        backoff = next_backoff(backoff);
        spdlog::warn("event=postgres_unavailable worker={} retry_in_ms={} error=\"{}\"", index,
                     backoff.count(), std::string(e.what()).substr(0, 200));
        sleep_unless_stopping(stopping_, backoff);
        continue;
      }
    }

    FetchedBatch batch;
    jsErrCode code = static_cast<jsErrCode>(0);
    pull_request_expires = Clock::now() + config_.fetch_wait + kPullRequestMargin;
    const natsStatus status = source.fetch(batch, static_cast<int>(config_.batch_size),
                                           config_.fetch_wait, /*no_wait=*/false, &code);
    if (status == NATS_TIMEOUT || (status == NATS_OK && batch.size() == 0)) continue;
    if (status != NATS_OK) {
      // The consumer or the stream may be gone: subscribe again (which
      // creates what is missing) after a pause.
      ++totals_.transient_errors;
      metrics_->retry_fetch->Increment();
      backoff = next_backoff(backoff);
      spdlog::warn("event=fetch_failed worker={} status={} js_code={} retry_in_ms={}", index,
                   natsStatus_GetText(status), static_cast<int>(code), backoff.count());
      source.reset();
      sleep_unless_stopping(stopping_, backoff);
      continue;
    }
    if (handle(batch)) {
      backoff = std::chrono::milliseconds(0);
    } else {
      backoff = next_backoff(backoff);
      sleep_unless_stopping(stopping_, backoff);
    }
  }

  // Messages a pull request delivered after its Fetch returned wait in the
  // subscription: take them (and nothing the broker would have to wait for)
  // once the last pull request has expired, so that none is left for
  // redelivery after AckWait.
  if (source.subscribed() && writer.connected()) {
    std::this_thread::sleep_until(pull_request_expires);
    FetchedBatch late;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (source.fetch(late, static_cast<int>(config_.batch_size), std::chrono::milliseconds(1000),
                     /*no_wait=*/true, &code) == NATS_OK &&
        late.size() > 0) {
      handle(late);
      spdlog::info("event=worker_drained worker={} messages={}", index, late.size());
    }
  }
  spdlog::info("event=worker_stopped worker={}", index);
}

}  // namespace processor
