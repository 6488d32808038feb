#include "ingest/publisher.hpp"

#include <spdlog/spdlog.h>

#include "metrics.hpp"
#include "pipeline/timestamp.hpp"

namespace ingest {

struct JetStreamPublisher::Waiter {
  explicit Waiter(std::size_t count) : outcomes(count), done(count, false), remaining(count) {}

  void settle(std::size_t index, const PublishOutcome& outcome) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (done[index]) return;
      done[index] = true;
      outcomes[index] = outcome;
      --remaining;
    }
    cv.notify_all();
  }

  std::mutex mutex;
  std::condition_variable cv;
  std::vector<PublishOutcome> outcomes;
  std::vector<bool> done;
  std::size_t remaining;
};

namespace {

// Margin over the library's own per-message MaxWait before we stop waiting.
constexpr auto kWaitMargin = std::chrono::seconds(2);

PublishOutcome outcome_from_error(natsStatus status, jsErrCode code, const char* text) {
  PublishOutcome outcome;
  outcome.status = status == NATS_MAX_PAYLOAD || status == NATS_INVALID_ARG
                       ? PublishStatus::kPermanent
                       : PublishStatus::kRetryable;
  outcome.error = natsStatus_GetText(status);
  const std::string detail = text != nullptr ? text : "";
  if (status == NATS_TIMEOUT) {
    outcome.error_kind = "timeout";
  } else if (status == NATS_NO_RESPONDERS) {
    outcome.error_kind = "no_responders";
  } else if (detail.find("maximum") != std::string::npos) {
    outcome.error_kind = "stream_full";  // maximum bytes / messages exceeded
  } else {
    outcome.error_kind = "other";
  }
  if (code != 0) outcome.error += " (JetStream error " + std::to_string(code) + ")";
  if (text != nullptr && text[0] != '\0') {
    outcome.error += ": ";
    outcome.error += text;
  }
  return outcome;
}

}  // namespace

PublishOutcome outcome_of_puback(bool duplicate, std::uint64_t sequence) {
  PublishOutcome outcome;
  outcome.stream_seq = sequence;
  if (!duplicate) {
    outcome.status = PublishStatus::kAccepted;
  } else if (sequence != 0) {
    outcome.status = PublishStatus::kDuplicate;
  } else {
    outcome.status = PublishStatus::kRetryable;
    outcome.error = "broker answered duplicate with sequence 0 (not stored; a leader change)";
    outcome.error_kind = "duplicate_not_stored";
  }
  return outcome;
}

JetStreamPublisher::JetStreamPublisher(natsConnection* conn, pipeline::nats::StreamSettings stream,
                                       std::chrono::milliseconds publish_timeout,
                                       IngestMetrics* metrics)
    : stream_(std::move(stream)), publish_timeout_(publish_timeout), metrics_(metrics) {
  jsOptions opts;
  jsOptions_Init(&opts);
  opts.Wait = publish_timeout_.count();
  opts.PublishAsync.AckHandler = &JetStreamPublisher::on_ack;
  opts.PublishAsync.AckHandlerClosure = this;
  opts.PublishAsync.MaxPending = std::int64_t{256} * 1024;
  opts.PublishAsync.StallWait = publish_timeout_.count();
  js_ = pipeline::nats::jetstream(conn, &opts);
}

JetStreamPublisher::~JetStreamPublisher() {
  // Wait (bounded) for acks still in flight so the handler never sees a dead `this`.
  jsPubOptions opts;
  jsPubOptions_Init(&opts);
  opts.MaxWait = publish_timeout_.count();
  js_PublishAsyncComplete(js_.get(), &opts);
  js_.reset();
}

void JetStreamPublisher::on_ack(jsCtx* /*js*/, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae,
                                void* closure) {
  auto* self = static_cast<JetStreamPublisher*>(closure);
  PublishOutcome outcome;
  if (pa != nullptr) {
    outcome = outcome_of_puback(pa->Duplicate, pa->Sequence);
  } else if (pae != nullptr) {
    outcome = outcome_from_error(pae->Err, pae->ErrCode, pae->ErrText);
  } else {
    outcome.error = "no publish acknowledgement";
  }
  self->complete(msg, outcome);
  natsMsg_Destroy(msg);
}

void JetStreamPublisher::complete(natsMsg* msg, const PublishOutcome& outcome) {
  Pending pending;
  {
    std::lock_guard<std::mutex> lock(pending_mutex_);
    const auto it = pending_.find(msg);
    if (it == pending_.end()) return;  // its request already gave up waiting
    pending = std::move(it->second);
    pending_.erase(it);
  }
  if (metrics_ != nullptr && outcome.status != PublishStatus::kRetryable) {
    metrics_->publish_latency->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - pending.sent_at).count());
  }
  pending.waiter->settle(pending.index, outcome);
}

std::vector<PublishOutcome> JetStreamPublisher::publish(
    const std::vector<const pipeline::Event*>& events, const std::string& request_id) {
  std::vector<Outgoing> messages;
  messages.reserve(events.size());
  for (const pipeline::Event* event : events) {
    messages.push_back(
        {stream_.subject_for(event->topic), pipeline::encode_event(*event), event->message_id()});
  }
  return publish_messages(messages, request_id);
}

PublishOutcome JetStreamPublisher::publish_duplicate_marker(const std::string& topic,
                                                            std::size_t duplicates,
                                                            const std::string& request_id) {
  // No Nats-Msg-Id: every marker counts, and the window must not take it
  // for a repeat.
  return publish_messages({{stream_.subject_for(topic), std::to_string(duplicates), ""}},
                          request_id)
      .front();
}

std::vector<PublishOutcome> JetStreamPublisher::publish_messages(
    const std::vector<Outgoing>& messages, const std::string& request_id) {
  const std::string published_at = std::to_string(pipeline::now_utc().micros_since_epoch);
  auto waiter = std::make_shared<Waiter>(messages.size());
  jsPubOptions pub_opts;
  jsPubOptions_Init(&pub_opts);
  pub_opts.MaxWait = publish_timeout_.count();  // the library reports NATS_TIMEOUT to on_ack

  for (std::size_t i = 0; i < messages.size(); ++i) {
    const Outgoing& out = messages[i];
    natsMsg* msg = nullptr;
    natsStatus status = natsMsg_Create(&msg, out.subject.c_str(), nullptr, out.data.data(),
                                       static_cast<int>(out.data.size()));
    if (status == NATS_OK) {
      status = out.message_id.empty()
                   ? natsMsgHeader_Set(msg, pipeline::nats::kBrokerDuplicateHeader, "1")
                   : natsMsgHeader_Set(msg, "Nats-Msg-Id", out.message_id.c_str());
    }
    if (status == NATS_OK) {
      status = natsMsgHeader_Set(msg, pipeline::nats::kPublishedAtHeader, published_at.c_str());
    }
    if (status == NATS_OK && !request_id.empty()) {
      status = natsMsgHeader_Set(msg, pipeline::nats::kRequestIdHeader, request_id.c_str());
    }
    if (status == NATS_OK) {
      {
        std::lock_guard<std::mutex> lock(pending_mutex_);
        pending_[msg] = Pending{waiter, i, std::chrono::steady_clock::now()};
      }
      status = js_PublishMsgAsync(js_.get(), &msg, &pub_opts);
      if (status != NATS_OK) {
        std::lock_guard<std::mutex> lock(pending_mutex_);
        pending_.erase(msg);
      }
    }
    if (status != NATS_OK) {
      waiter->settle(
          i, outcome_from_error(status, static_cast<jsErrCode>(0), nats_GetLastError(nullptr)));
      natsMsg_Destroy(msg);  // no-op when the library took it
    }
  }

  std::unique_lock<std::mutex> lock(waiter->mutex);
  const bool all = waiter->cv.wait_for(lock, publish_timeout_ + kWaitMargin,
                                       [&] { return waiter->remaining == 0; });
  lock.unlock();
  if (!all) {
    {
      std::lock_guard<std::mutex> pending_lock(pending_mutex_);
      for (auto it = pending_.begin(); it != pending_.end();) {
        it = it->second.waiter == waiter ? pending_.erase(it) : std::next(it);
      }
    }
    PublishOutcome timeout;
    timeout.error = "no PubAck within INGEST_PUBLISH_TIMEOUT";
    timeout.error_kind = "timeout";
    for (std::size_t i = 0; i < messages.size(); ++i) waiter->settle(i, timeout);
  }
  std::lock_guard<std::mutex> final_lock(waiter->mutex);
  return waiter->outcomes;
}

}  // namespace ingest
