#include "processor/processor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <pqxx/except>
#include <pqxx/nontransaction>

#include "metrics.hpp"
#include "pipeline/database.hpp"
#include "pipeline/fault.hpp"
#include "pipeline/timestamp.hpp"
#include "processor/batch_writer.hpp"

#include <prometheus/exposer.h>

namespace processor {
namespace {

using pipeline::nats::check;
using pipeline::nats::MetaDataPtr;
using pipeline::nats::SubscriptionPtr;
using Clock = std::chrono::steady_clock;
using pipeline::nats::kPublishedAtHeader;
using pipeline::nats::kRequestIdHeader;

constexpr auto kPruneInterval = std::chrono::seconds(30);
constexpr auto kMaxBackoff = std::chrono::milliseconds(5000);

// Owns a fetched batch: natsMsgList_Destroy frees every message.
// Owns the messages of one Fetch (natsMsgList_Destroy frees them).
class FetchedBatch {
 public:
  FetchedBatch() = default;
  ~FetchedBatch() { natsMsgList_Destroy(&list_); }
  FetchedBatch(const FetchedBatch&) = delete;
  FetchedBatch& operator=(const FetchedBatch&) = delete;

  /// Fetches up to `count` messages, waiting at most `wait`.
  natsStatus fetch(natsSubscription* sub, int count, std::chrono::milliseconds wait,
                   jsErrCode* code) {
    return natsSubscription_Fetch(&list_, sub, count, wait.count(), code);
  }
  int size() const { return list_.Count; }
  natsMsg* operator[](int i) const { return list_.Msgs[i]; }

 private:
  natsMsgList list_{nullptr, 0};
};

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

// Counts the outcomes of committed messages in the metrics and the totals.
void record(const std::vector<IncomingMessage>& messages, const std::vector<StoreOutcome>& outcomes,
            ProcessorMetrics* metrics, ProcessorTotals* totals) {
  const auto committed = pipeline::now_utc();
  std::size_t counts[5] = {0, 0, 0, 0, 0};
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    ++counts[static_cast<std::size_t>(outcomes[i])];
    if (outcomes[i] == StoreOutcome::kStored && messages[i].published_micros > 0) {
      metrics->end_to_end_seconds->Observe(
          static_cast<double>(committed.micros_since_epoch - messages[i].published_micros) / 1e6);
    }
  }
  const std::size_t stored = counts[static_cast<std::size_t>(StoreOutcome::kStored)];
  const std::size_t duplicates = counts[static_cast<std::size_t>(StoreOutcome::kDuplicate)];
  const std::size_t redelivered = counts[static_cast<std::size_t>(StoreOutcome::kRedelivered)];
  const std::size_t dead = counts[static_cast<std::size_t>(StoreOutcome::kDeadLettered)];
  const std::size_t markers = counts[static_cast<std::size_t>(StoreOutcome::kBrokerDuplicate)];
  metrics->stored->Increment(static_cast<double>(stored));
  metrics->duplicates->Increment(static_cast<double>(duplicates));
  metrics->redelivered->Increment(static_cast<double>(redelivered));
  metrics->dead_lettered->Increment(static_cast<double>(dead));
  metrics->duplicate_markers->Increment(static_cast<double>(markers));
  totals->stored += stored;
  totals->duplicates += duplicates;
  totals->redelivered += redelivered;
  totals->dead_lettered += dead;
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
    pipeline::nats::ensure_consumer(js_.get(), common.stream, common.consumer);
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

// Refreshes the gauges about the broker and the database every 2 s.
void Processor::run_health() {
  const auto& stream = config_.common.stream;
  const auto& consumer = config_.common.consumer;
  std::unique_ptr<pqxx::connection> db;
  while (!stopping_.load()) {
    metrics_->up.nats_up->Set(natsConnection_Status(conn_.get()) == NATS_CONN_STATUS_CONNECTED);
    jsConsumerInfo* ci = nullptr;
    if (js_GetConsumerInfo(&ci, js_.get(), stream.name.c_str(), consumer.durable.c_str(), nullptr,
                           nullptr) == NATS_OK) {
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
               config_.workers, config_.batch_size, config_.common.stream.name,
               config_.common.consumer.durable);
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

void Processor::run_worker(std::size_t index) {
  const auto& stream = config_.common.stream;
  const auto& consumer = config_.common.consumer;
  natsSubscription* raw_sub = nullptr;
  jsSubOptions sub_opts;
  jsSubOptions_Init(&sub_opts);
  sub_opts.Stream = stream.name.c_str();
  sub_opts.Consumer = consumer.durable.c_str();  // bind to the shared durable
  jsErrCode code = static_cast<jsErrCode>(0);
  const std::string filter = stream.wildcard();
  try {
    check(js_PullSubscribe(&raw_sub, js_.get(), filter.c_str(), consumer.durable.c_str(), nullptr,
                           &sub_opts, &code),
          "js_PullSubscribe", code);
  } catch (const std::exception& e) {
    spdlog::critical("event=worker_subscribe_failed worker={} error=\"{}\"", index, e.what());
    return;
  }
  SubscriptionPtr sub(raw_sub);
  BatchWriter writer(config_.common.database_url);
  InProgressTicker ticker(std::max(std::chrono::milliseconds(100), consumer.ack_wait / 3),
                          metrics_->in_progress_acks);
  std::chrono::milliseconds backoff{0};
  auto next_prune = Clock::now() + kPruneInterval;
  // natsMsg_NakWithDelay takes milliseconds.
  const auto nak_delay_ms = static_cast<int64_t>(config_.retry_delay.count());

  while (!stopping_.load()) {
    if (!writer.connected()) {
      try {
        writer.connect();
        if (backoff.count() > 0) spdlog::info("event=postgres_reconnected worker={}", index);
        backoff = std::chrono::milliseconds(0);
      } catch (const std::exception& e) {
        ++totals_.transient_errors;
        metrics_->transient_database->Increment();
        metrics_->up.postgres_up->Set(0);
        backoff = next_backoff(backoff);
        spdlog::warn("event=postgres_unavailable worker={} retry_in_ms={} error=\"{}\"", index,
                     backoff.count(), std::string(e.what()).substr(0, 200));
        sleep_unless_stopping(stopping_, backoff);
        continue;
      }
    }

    FetchedBatch batch;
    code = static_cast<jsErrCode>(0);
    const natsStatus status =
        batch.fetch(sub.get(), static_cast<int>(config_.batch_size), config_.fetch_wait, &code);
    if (status == NATS_TIMEOUT || (status == NATS_OK && batch.size() == 0)) continue;
    if (status != NATS_OK) {
      ++totals_.transient_errors;
      metrics_->transient_fetch->Increment();
      spdlog::warn("event=fetch_failed worker={} status={} js_code={}", index,
                   natsStatus_GetText(status), static_cast<int>(code));
      sleep_unless_stopping(stopping_, std::chrono::milliseconds(250));
      continue;
    }
    totals_.fetched += static_cast<std::uint64_t>(batch.size());
    metrics_->fetched->Increment(batch.size());
    metrics_->batch_size->Observe(batch.size());

    std::vector<IncomingMessage> messages;
    messages.reserve(static_cast<std::size_t>(batch.size()));
    for (int i = 0; i < batch.size(); ++i) {
      natsMsg* msg = batch[i];
      jsMsgMetaData* raw_meta = nullptr;
      IncomingMessage m;
      if (natsMsg_GetMetaData(&raw_meta, msg) == NATS_OK) {
        MetaDataPtr meta(raw_meta);
        m.stream_seq = meta->Sequence.Stream;
      }
      m.subject = natsMsg_GetSubject(msg);
      const char* header = nullptr;
      if (natsMsgHeader_Get(msg, kPublishedAtHeader, &header) == NATS_OK && header != nullptr) {
        m.published_micros = std::strtoll(header, nullptr, 10);
      }
      if (natsMsgHeader_Get(msg, kRequestIdHeader, &header) == NATS_OK && header != nullptr) {
        m.request_id = header;
      }
      m.broker_duplicate_marker =
          natsMsgHeader_Get(msg, pipeline::nats::kBrokerDuplicateHeader, &header) == NATS_OK;
      m.data.assign(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
      messages.push_back(std::move(m));
    }

    std::vector<StoreOutcome> outcomes;
    ticker.begin(&batch);
    // Stops the in-progress acks before the acks (and on every way out).
    struct EndTicker {
      InProgressTicker& ticker;
      ~EndTicker() { ticker.end(); }
    } end_ticker{ticker};
    try {
      const auto started = Clock::now();
      BatchResult result = writer.write(messages);
      metrics_->transaction_seconds->Observe(
          std::chrono::duration<double>(Clock::now() - started).count());
      record(messages, result.outcomes, metrics_.get(), &totals_);
      outcomes = std::move(result.outcomes);
      ++totals_.batches;
    } catch (const std::exception& e) {
      if (pipeline::db::is_transient(e) || dynamic_cast<const pqxx::in_doubt_error*>(&e)) {
        // Not committed (or not known to be): redeliver later. A retry is
        // safe, stored rows are recognised by their stream sequence.
        ++totals_.transient_errors;
        metrics_->transient_database->Increment();
        for (int i = 0; i < batch.size(); ++i)
          natsMsg_NakWithDelay(batch[i], nak_delay_ms, nullptr);
        writer.reset();
        backoff = next_backoff(backoff);
        spdlog::warn(
            "event=batch_failed_transient worker={} messages={} retry_in_ms={} error=\"{}\"", index,
            batch.size(), backoff.count(), std::string(e.what()).substr(0, 200));
        sleep_unless_stopping(stopping_, backoff);
        continue;
      }
      // Something in this batch cannot be stored: find it by writing the
      // messages one by one, and keep whatever fails in dead_letters.
      spdlog::error("event=batch_failed_permanent worker={} messages={} error=\"{}\"", index,
                    batch.size(), std::string(e.what()).substr(0, 300));
      writer.reset();
      outcomes.assign(messages.size(), StoreOutcome::kStored);
      // Each message that committed on its own is acked below even if a later
      // one cannot be written now: its redelivery would be recognised anyway.
      std::size_t written = 0;
      std::string stopped_by;
      for (; written < messages.size(); ++written) {
        try {
          outcomes[written] = writer.write({messages[written]}).outcomes.front();
        } catch (const std::exception& single) {
          writer.reset();
          if (pipeline::db::is_transient(single)) {
            stopped_by = single.what();
            break;
          }
          try {
            writer.dead_letter(messages[written], single.what());
            outcomes[written] = StoreOutcome::kDeadLettered;
          } catch (const std::exception& letter) {
            writer.reset();
            stopped_by = letter.what();
            break;
          }
        }
      }
      outcomes.resize(written);
      record(messages, outcomes, metrics_.get(), &totals_);
      if (written < messages.size()) {
        ++totals_.transient_errors;
        metrics_->transient_database->Increment();
        spdlog::warn(
            "event=batch_split_interrupted worker={} written={} redelivering={} error=\"{}\"",
            index, written, messages.size() - written, stopped_by.substr(0, 200));
        for (std::size_t i = written; i < messages.size(); ++i) {
          natsMsg_NakWithDelay(batch[static_cast<int>(i)], nak_delay_ms, nullptr);
        }
      }
    }
    end_ticker.ticker.end();
    if (spdlog::should_log(spdlog::level::debug)) {
      std::string request_ids;
      for (const auto& m : messages) {
        if (!m.request_id.empty() && request_ids.find(m.request_id) == std::string::npos) {
          request_ids += (request_ids.empty() ? "" : ",") + m.request_id;
        }
      }
      spdlog::debug("event=batch_committed worker={} messages={} request_ids={}", index,
                    messages.size(), request_ids);
    }
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      if (outcomes[i] == StoreOutcome::kDeadLettered) {
        spdlog::warn("event=dead_lettered worker={} stream_seq={} request_id={}", index,
                     messages[i].stream_seq, messages[i].request_id);
      }
    }
    pipeline::fault::crash_point("processor.after_commit_before_ack");
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      natsMsg_Ack(batch[static_cast<int>(i)], nullptr);
    }
    if (outcomes.size() == messages.size()) backoff = std::chrono::milliseconds(0);

    if (index == 0 && Clock::now() >= next_prune) {
      next_prune = Clock::now() + kPruneInterval;
      jsConsumerInfo* ci = nullptr;
      if (js_GetConsumerInfo(&ci, js_.get(), stream.name.c_str(), consumer.durable.c_str(), nullptr,
                             nullptr) == NATS_OK) {
        pipeline::nats::ConsumerInfoPtr info(ci);
        try {
          writer.prune_duplicate_deliveries(info->AckFloor.Stream);
        } catch (const std::exception& e) {
          spdlog::warn("event=prune_failed error=\"{}\"", std::string(e.what()).substr(0, 200));
          writer.reset();
        }
      }
    }
  }
  spdlog::info("event=worker_stopped worker={}", index);
}

}  // namespace processor
