#include "worker.hpp"

#include <algorithm>
#include <thread>

#include "pipeline/fault.hpp"
#include "pipeline/logging.hpp"
#include "pipeline/timestamp.hpp"

namespace processor {
namespace {

namespace log = pipeline::log;
using Clock = std::chrono::steady_clock;
using pipeline::db::FailureKind;

constexpr auto kMaxBackoff = std::chrono::milliseconds(5000);
// A batch may take this long beyond DATABASE_STATEMENT_TIMEOUT before it is
// cut on the client's side: the server's own cancel normally comes first.
constexpr auto kDeadlineMargin = std::chrono::seconds(2);
// A pull request outlives its Fetch by at most this (nats.c asks the broker
// to expire it 10 ms before the Fetch gives up; the broker may be late).
constexpr auto kPullRequestMargin = std::chrono::milliseconds(100);
// Skipped messages loaded from the stream in one turn, at most.
constexpr std::uint64_t kRepairBudget = 10000;

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

void sleep_unless_stopping(const std::atomic<bool>& stopping, std::chrono::milliseconds total) {
  const auto until = Clock::now() + total;
  while (!stopping.load() && Clock::now() < until) {
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(50), until - Clock::now()));
  }
}

Worker::Worker(std::size_t index, jsCtx* js, const ProcessorConfig& config,
               const pipeline::nats::ConsumerSettings& consumer, ProcessorMetrics& metrics,
               ProcessorTotals& totals, DeliveryGaps& gaps,
               std::shared_ptr<const KeyFilters> filters, const std::atomic<bool>& stopping)
    : index_(index),
      config_(config),
      metrics_(metrics),
      totals_(totals),
      gaps_(gaps),
      stopping_(stopping),
      source_(js, config.common.stream, consumer),
      writer_(config.common.database_url, config.common.statement_timeout + kDeadlineMargin,
              std::move(filters)),
      ticker_(std::max(std::chrono::milliseconds(100), consumer.ack_wait / 3),
              metrics.in_progress_acks),
      retry_{config.retry_delay, config.max_retry_delay},
      pull_request_expires_(Clock::now()) {}

void Worker::run() {
  while (!stopping_.load()) {
    if (!ensure_subscribed() || !ensure_database()) continue;
    if (turn()) {
      backoff_ = std::chrono::milliseconds(0);
    } else {
      back_off();
    }
  }
  drain_late_deliveries();
  log::info("worker_stopped", {{"worker", index_}});
}

std::chrono::milliseconds Worker::next_backoff() {
  backoff_ = std::min(kMaxBackoff, std::max(std::chrono::milliseconds(100), backoff_ * 2));
  return backoff_;
}

void Worker::back_off() { sleep_unless_stopping(stopping_, next_backoff()); }

bool Worker::ensure_subscribed() {
  if (source_.subscribed()) return true;
  try {
    source_.subscribe();
    if (backoff_.count() > 0) log::info("worker_subscribed", {{"worker", index_}});
    backoff_ = std::chrono::milliseconds(0);
    return true;
  } catch (const std::exception& e) {
    ++totals_.transient_errors;
    metrics_.retry_fetch->Increment();
    const auto wait = next_backoff();
    log::warn(
        "worker_subscribe_failed",
        {{"worker", index_}, {"retry_in_ms", wait.count()}, {"error", log::first_line(e.what())}});
    sleep_unless_stopping(stopping_, wait);
    return false;
  }
}

bool Worker::ensure_database() {
  if (writer_.connected()) return true;
  try {
    writer_.connect();
    if (backoff_.count() > 0) log::info("postgres_reconnected", {{"worker", index_}});
    backoff_ = std::chrono::milliseconds(0);
    return true;
  } catch (const std::exception& e) {
    ++totals_.transient_errors;
    metrics_.retry_unavailable->Increment();
    metrics_.up.postgres_up->Set(0);
    const auto wait = next_backoff();
    log::warn(
        "postgres_unavailable",
        {{"worker", index_}, {"retry_in_ms", wait.count()}, {"error", log::first_line(e.what())}});
    sleep_unless_stopping(stopping_, wait);
    return false;
  }
}

bool Worker::turn() {
  if (!unrepaired_.empty()) repair_skipped();
  FetchedBatch batch;
  jsErrCode code = static_cast<jsErrCode>(0);
  pull_request_expires_ = Clock::now() + config_.fetch_wait + kPullRequestMargin;
  const natsStatus status = source_.fetch(batch, static_cast<int>(config_.batch_size),
                                          config_.fetch_wait, /*no_wait=*/false, &code);
  if (status == NATS_TIMEOUT || (status == NATS_OK && batch.size() == 0)) return true;
  if (status != NATS_OK) {
    // The consumer or the stream may be gone: subscribe again (which
    // creates what is missing) after a pause.
    ++totals_.transient_errors;
    metrics_.retry_fetch->Increment();
    log::warn("fetch_failed", {{"worker", index_},
                               {"status", natsStatus_GetText(status)},
                               {"js_code", static_cast<int>(code)}});
    source_.reset();
    return false;
  }
  return handle(batch);
}

bool Worker::handle(FetchedBatch& batch) {
  totals_.fetched += static_cast<std::uint64_t>(batch.size());
  metrics_.fetched->Increment(batch.size());
  metrics_.batch_size->Observe(batch.size());
  const std::vector<IncomingMessage> messages = source_.decode(batch);
  if (!source_.same_incarnation()) {
    // Fetched from a consumer of a stream created after this subscription
    // was made: the positions would be wrong. Deliver them again to a new
    // subscription.
    for (int i = 0; i < batch.size(); ++i) natsMsg_Nak(batch[i], nullptr);
    metrics_.retry_incarnation->Increment();
    totals_.retried += static_cast<std::uint64_t>(batch.size());
    log::warn("stream_incarnation_changed",
              {{"worker", index_}, {"messages", batch.size()}, {"action", "resubscribe"}});
    source_.reset();
    gaps_.clear();
    unrepaired_.clear();
    return false;
  }
  watch_for_gaps(messages);
  ticker_.begin(&batch);
  const auto started = Clock::now();
  const BatchSettlement settled = settle_batch(writer_, messages, retry_);
  ticker_.end();  // no in-progress ack after the acks
  metrics_.transaction_seconds->Observe(
      std::chrono::duration<double>(Clock::now() - started).count());
  record(messages, settled, metrics_, totals_);
  report(messages, settled);
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
}

void Worker::watch_for_gaps(const std::vector<IncomingMessage>& messages) {
  for (const IncomingMessage& m : messages) {
    for (const SequenceGap& gap : gaps_.record(m.consumer_seq, m.position.seq, m.deliveries == 1)) {
      log::error("broker_skipped_messages", {{"worker", index_},
                                             {"from_sequence", gap.from},
                                             {"to_sequence", gap.to},
                                             {"messages", gap.size()},
                                             {"action", "load_from_stream"}});
      unrepaired_.push_back(gap);
    }
  }
}

void Worker::repair_skipped() {
  std::vector<SequenceGap> gaps;
  gaps.swap(unrepaired_);
  const auto store = [&](const std::vector<IncomingMessage>& found) {
    const BatchSettlement settled = settle_batch(writer_, found, retry_);
    record(found, settled, metrics_, totals_);
    std::vector<std::uint64_t> unsettled;
    for (std::size_t i = 0; i < found.size(); ++i) {
      if (settled.messages[i].action != Settlement::Action::kAck) {
        unsettled.push_back(found[i].position.seq);
      }
    }
    return unsettled;
  };
  GapRepair repair;
  try {
    repair = repair_gaps(
        gaps, kRepairBudget, [&](std::uint64_t seq) { return source_.load(seq); }, store);
  } catch (const std::exception& e) {
    unrepaired_ = std::move(gaps);  // the broker did not say: the next turn tries again
    log::warn("skipped_messages_unloaded",
              {{"worker", index_}, {"error", log::first_line(e.what())}});
    return;
  }
  unrepaired_ = std::move(repair.again);
  metrics_.skipped_recovered->Increment(static_cast<double>(repair.recovered));
  metrics_.skipped_gone->Increment(static_cast<double>(repair.gone));
  std::uint64_t left = 0;
  for (const SequenceGap& gap : unrepaired_) left += gap.size();
  const auto line = repair.gone > 0 ? &log::error : &log::warn;  // gone: accepted, never stored
  line(
      "skipped_messages_loaded",
      {{"worker", index_}, {"recovered", repair.recovered}, {"gone", repair.gone}, {"left", left}});
}

void Worker::report(const std::vector<IncomingMessage>& messages,
                    const BatchSettlement& settled) const {
  if (!settled.failures.empty()) {
    std::size_t retried = 0;
    for (const auto& s : settled.messages) retried += s.outcome ? 0 : 1;
    log::warn("batch_failed", {{"worker", index_},
                               {"messages", messages.size()},
                               {"split", settled.split},
                               {"retrying", retried},
                               {"failure", pipeline::db::failure_name(settled.failures.front())},
                               {"error", log::first_line(settled.first_error)}});
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (settled.messages[i].outcome == StoreOutcome::kDeadLettered) {
      log::warn("dead_lettered", {{"worker", index_},
                                  {"stream_seq", messages[i].position.seq},
                                  {"request_id", messages[i].request_id}});
    }
  }
}

// Messages a pull request delivered after its Fetch returned wait in the
// subscription: take them (and nothing the broker would have to wait for)
// once the last pull request has expired, so that none is left for
// redelivery after AckWait.
void Worker::drain_late_deliveries() {
  if (!source_.subscribed() || !writer_.connected()) return;
  std::this_thread::sleep_until(pull_request_expires_);
  FetchedBatch late;
  jsErrCode code = static_cast<jsErrCode>(0);
  if (source_.fetch(late, static_cast<int>(config_.batch_size), std::chrono::milliseconds(1000),
                    /*no_wait=*/true, &code) == NATS_OK &&
      late.size() > 0) {
    handle(late);
    log::info("worker_drained", {{"worker", index_}, {"messages", late.size()}});
  }
}

}  // namespace processor
