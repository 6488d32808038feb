#include "ingest/publisher.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <future>
#include <random>

#include "metrics.hpp"
#include "pipeline/timestamp.hpp"
#include "publishing/publisher_request.hpp"
#include "publishing/timer_queue.hpp"

namespace ingest {

using Clock = std::chrono::steady_clock;

namespace {

// After the deadline, how long before the request is ended whatever the
// library still owes (it reports a timeout for every message by itself).
constexpr auto kExpiryMargin = std::chrono::seconds(1);
constexpr auto kMaxRetryPause = std::chrono::milliseconds(500);
constexpr auto kSweepInterval = std::chrono::milliseconds(250);

PublishOutcome outcome_from_error(natsStatus status, jsErrCode code, const char* text) {
  PublishOutcome outcome;
  outcome.status = status == NATS_MAX_PAYLOAD || status == NATS_INVALID_ARG
                       ? PublishStatus::kPermanent
                       : PublishStatus::kRetryable;
  outcome.error = natsStatus_GetText(status);
  const std::string detail = text != nullptr ? text : "";
  if (status == NATS_TIMEOUT) {
    outcome.kind = PublishError::kTimeout;
  } else if (status == NATS_NO_RESPONDERS) {
    outcome.kind = PublishError::kNoResponders;
  } else if (detail.find("maximum") != std::string::npos || code == JSStorageResourcesExceededErr ||
             code == JSStreamStoreFailedErr || detail.find("insufficient") != std::string::npos) {
    outcome.kind = PublishError::kStreamFull;  // a limit: waiting a moment will not help
  } else {
    outcome.kind = PublishError::kOther;
  }
  if (code != 0) outcome.error += " (JetStream error " + std::to_string(code) + ")";
  if (!detail.empty()) outcome.error += ": " + detail;
  return outcome;
}

// Worth another attempt within the request's time.
bool passes(const PublishOutcome& outcome) {
  return outcome.status == PublishStatus::kRetryable && outcome.kind != PublishError::kStreamFull;
}

std::string random_id() {
  std::random_device device;
  std::mt19937_64 random(device());
  char buffer[17];
  std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(random()));
  return buffer;
}

}  // namespace

const char* publish_error_name(PublishError error) {
  switch (error) {
    case PublishError::kNone:
      return "none";
    case PublishError::kTimeout:
      return "timeout";
    case PublishError::kNoResponders:
      return "no_responders";
    case PublishError::kStreamFull:
      return "stream_full";
    case PublishError::kNotStored:
      return "not_stored";
    case PublishError::kCapacity:
      return "capacity";
    case PublishError::kStorageFull:
      return "storage_full";
    case PublishError::kOther:
      break;
  }
  return "other";
}

PublishOutcome outcome_of_puback(bool duplicate, std::uint64_t sequence) {
  PublishOutcome outcome;
  outcome.stream_seq = sequence;
  if (!duplicate) {
    outcome.status = PublishStatus::kAccepted;
  } else if (sequence != 0) {
    outcome.status = PublishStatus::kDuplicate;
  } else {
    outcome.status = PublishStatus::kRetryable;
    outcome.kind = PublishError::kNotStored;
    outcome.error = "broker answered duplicate with sequence 0 (not stored; a leader change)";
  }
  return outcome;
}

JetStreamPublisher::JetStreamPublisher(natsConnection* conn, pipeline::nats::StreamSettings stream,
                                       std::chrono::milliseconds publish_timeout,
                                       IngestMetrics* metrics, Room capacity)
    : stream_(std::move(stream)),
      publish_timeout_(publish_timeout),
      // Long enough for a loaded broker, short enough to try again within
      // the request's time when a PubAck was lost (a leader change).
      attempt_wait_(std::max(std::chrono::milliseconds(250), publish_timeout / 4)),
      metrics_(metrics),
      instance_id_(random_id()),
      timers_(std::make_unique<TimerQueue>()),
      capacity_(capacity),
      conn_(conn) {
  jsOptions opts;
  jsOptions_Init(&opts);
  opts.Wait = publish_timeout_.count();
  opts.PublishAsync.AckHandler = &JetStreamPublisher::on_ack;
  opts.PublishAsync.AckHandlerClosure = this;
  // admit() keeps the messages awaiting PubAcks within capacity_, so this
  // limit (at which js_PublishMsgAsync would block its caller for
  // StallWait) is never reached; the margin covers a retry sent while its
  // earlier attempt's timeout is being reported.
  opts.PublishAsync.MaxPending = static_cast<std::int64_t>(capacity_.messages) * 2 + 1024;
  opts.PublishAsync.StallWait = 50;
  js_ = pipeline::nats::jetstream(conn, &opts);
  sender_ = std::thread([this] { run_sender(); });
  start_owner_checks(conn);
  schedule_sweep();
}

void JetStreamPublisher::schedule_sweep() {
  timers_->at(Clock::now() + kSweepInterval, [this] {
    sweep_expired();
    schedule_sweep();
  });
}

void JetStreamPublisher::sweep_expired() {
  const auto now = Clock::now();
  std::vector<std::shared_ptr<Request>> due;
  {
    std::lock_guard<std::mutex> lock(expiry_mutex_);
    while (!expiry_.empty() && expiry_.front().first <= now) {
      if (auto alive = expiry_.front().second.lock()) due.push_back(std::move(alive));
      expiry_.pop_front();
    }
  }
  for (const auto& request : due) expire(request);
  expire_owner_checks();
}

JetStreamPublisher::~JetStreamPublisher() {
  // Nothing new goes out; then the acks still in flight are waited for
  // (bounded), so that the handler never sees a dead `this`.
  {
    std::lock_guard<std::mutex> lock(send_mutex_);
    send_quit_ = true;
  }
  send_wake_.notify_all();
  if (sender_.joinable()) sender_.join();
  jsPubOptions opts;
  jsPubOptions_Init(&opts);
  opts.MaxWait = publish_timeout_.count();
  js_PublishAsyncComplete(js_.get(), &opts);
  stop_owner_checks();
  timers_->stop();  // its tasks use this object (and timers_ itself)
  js_.reset();
}

OutgoingMessage JetStreamPublisher::event_message(const pipeline::Event& event) const {
  return {stream_.subject_for(event.topic), pipeline::encode_event(event), event.message_id()};
}

OutgoingMessage JetStreamPublisher::marker_message(const std::string& topic,
                                                   std::size_t duplicates) const {
  // Its own Nats-Msg-Id (set in send(): one per publish() call), so that a
  // marker published again after a lost PubAck is dropped by the broker
  // instead of being counted twice; no two requests share it.
  return {stream_.subject_for(topic), std::to_string(duplicates), ""};
}

void JetStreamPublisher::publish(std::vector<OutgoingMessage> messages,
                                 const std::string& request_id, Done done, bool admitted) {
  const std::size_t count = messages.size();
  Room room{count, 0};
  for (const OutgoingMessage& message : messages) room.bytes += room_of(message).bytes;
  if (!admitted && !admit(room)) {
    PublishOutcome full;
    full.status = PublishStatus::kRetryable;
    full.kind = PublishError::kCapacity;
    full.error =
        "ingest has INGEST_MAX_PENDING_PUBLISHES events (or INGEST_MAX_PENDING_PUBLISH_BYTES) "
        "awaiting PubAcks; retry later";
    done(std::vector<PublishOutcome>(count, full));
    return;
  }
  auto request = std::make_shared<Request>();
  request->messages = std::move(messages);
  request->request_id = request_id;
  request->publish_id = instance_id_ + "-" + std::to_string(next_publish_++);
  request->published_at = std::to_string(pipeline::now_utc().micros_since_epoch);
  request->started = Clock::now();
  request->deadline = request->started + publish_timeout_;
  request->done = std::move(done);
  request->outcomes.resize(count);
  request->settled.assign(count, false);
  request->attempts.assign(count, 0);
  request->remaining = count;
  if (count == 0) {
    request->finished = true;
    request->done({});
    return;
  }
  // A safety net: the library reports a timeout for each message by itself.
  // Every request has the same timeout, so their deadlines come in order: a
  // FIFO the sweep takes from the front (no timer per request).
  {
    std::lock_guard<std::mutex> lock(expiry_mutex_);
    expiry_.emplace_back(request->deadline + kExpiryMargin, request);
  }
  for (std::size_t i = 0; i < count; ++i) send(request, i);
}

std::vector<PublishOutcome> JetStreamPublisher::publish_and_wait(
    std::vector<OutgoingMessage> messages, const std::string& request_id) {
  std::promise<std::vector<PublishOutcome>> promise;
  auto future = promise.get_future();
  publish(std::move(messages), request_id, [&promise](std::vector<PublishOutcome> outcomes) {
    promise.set_value(std::move(outcomes));
  });
  return future.get();
}

void JetStreamPublisher::send(const std::shared_ptr<Request>& request, std::size_t index) {
  post([this, request, index] { send_now(request, index); });
}

void JetStreamPublisher::send_now(const std::shared_ptr<Request>& request, std::size_t index) {
  const OutgoingMessage& out = request->messages[index];
  const auto now = Clock::now();
  {
    std::lock_guard<std::mutex> lock(request->mutex);
    if (request->finished || request->settled[index]) return;
    ++request->attempts[index];
  }
  const std::string publish_id = request->publish_id + "." + std::to_string(index);
  natsMsg* msg = nullptr;
  natsStatus status = natsMsg_Create(&msg, out.subject.c_str(), nullptr, out.data.data(),
                                     static_cast<int>(out.data.size()));
  if (status == NATS_OK && out.message_id.empty()) {
    status = natsMsgHeader_Set(msg, pipeline::nats::kBrokerDuplicateHeader, "1");
    // A marker's id is its publish id: unique to this request, the same
    // for each attempt.
    if (status == NATS_OK) status = natsMsgHeader_Set(msg, "Nats-Msg-Id", publish_id.c_str());
  } else if (status == NATS_OK) {
    status = natsMsgHeader_Set(msg, "Nats-Msg-Id", out.message_id.c_str());
  }
  if (status == NATS_OK) {
    status =
        natsMsgHeader_Set(msg, pipeline::nats::kPublishedAtHeader, request->published_at.c_str());
  }
  if (status == NATS_OK && !request->request_id.empty()) {
    status = natsMsgHeader_Set(msg, pipeline::nats::kRequestIdHeader, request->request_id.c_str());
  }
  if (status == NATS_OK) status = natsMsgHeader_Set(msg, kPublishIdHeader, publish_id.c_str());
  if (status == NATS_OK) {
    jsPubOptions opts;
    jsPubOptions_Init(&opts);
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(request->deadline - now);
    opts.MaxWait = std::max<std::int64_t>(1, std::min(left, attempt_wait_).count());
    natsMsg* const sent = msg;
    {
      std::lock_guard<std::mutex> lock(pending_mutex_);
      pending_[msg] = Attempt{request, index, now};
      publishing_ = sent;
      publishing_answered_ = false;
    }
    status = js_PublishMsgAsync(js_.get(), &msg, &opts);
    bool answered = false;
    {
      std::lock_guard<std::mutex> lock(pending_mutex_);
      if (status != NATS_OK) pending_.erase(sent);
      answered = publishing_answered_;
      publishing_ = nullptr;
      publishing_answered_ = false;
    }
    if (answered) natsMsg_Destroy(sent);  // timed out during the call: on_ack left it
  }
  if (status != NATS_OK) {
    const PublishOutcome outcome =
        outcome_from_error(status, static_cast<jsErrCode>(0), nats_GetLastError(nullptr));
    natsMsg_Destroy(msg);  // no-op when the library took it
    on_outcome(request, index, outcome, now);
  }
}

void JetStreamPublisher::on_ack(jsCtx* /*js*/, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae,
                                void* closure) {
  auto* self = static_cast<JetStreamPublisher*>(closure);
  Attempt attempt;
  bool still_sending = false;
  {
    std::lock_guard<std::mutex> lock(self->pending_mutex_);
    const auto it = self->pending_.find(msg);
    if (it != self->pending_.end()) {
      attempt = std::move(it->second);
      self->pending_.erase(it);
    }
    if (msg == self->publishing_) {
      self->publishing_answered_ = true;
      still_sending = true;
    }
  }
  PublishOutcome outcome;
  if (pa != nullptr) {
    outcome = outcome_of_puback(pa->Duplicate, pa->Sequence);
  } else if (pae != nullptr) {
    outcome = outcome_from_error(pae->Err, pae->ErrCode, pae->ErrText);
  } else {
    outcome.kind = PublishError::kOther;
    outcome.error = "no publish acknowledgement";
  }
  if (!still_sending) natsMsg_Destroy(msg);
  if (attempt.request) self->on_outcome(attempt.request, attempt.index, outcome, attempt.sent_at);
}

void JetStreamPublisher::on_outcome(const std::shared_ptr<Request>& request, std::size_t index,
                                    const PublishOutcome& outcome, Clock::time_point sent_at) {
  int attempts = 0;
  {
    std::lock_guard<std::mutex> lock(request->mutex);
    if (request->finished || request->settled[index]) return;
    attempts = request->attempts[index];
  }
  const auto now = Clock::now();
  if (outcome.status == PublishStatus::kDuplicate && attempts > 1) {
    // An earlier attempt of ours may be the stored copy (its PubAck lost):
    // the stored message's publish id says.
    check_owner(request, index, outcome);
    return;
  }
  if (passes(outcome)) {
    const auto pause = std::min<Clock::duration>(
        kMaxRetryPause, std::chrono::milliseconds(25) * (1 << std::min(attempts - 1, 5)));
    if (now + pause + std::chrono::milliseconds(50) < request->deadline) {
      timers_->at(now + pause, [this, request, index] { send(request, index); });
      return;
    }
  }
  if (metrics_ != nullptr && outcome.status != PublishStatus::kRetryable) {
    metrics_->publish_latency->Observe(std::chrono::duration<double>(now - sent_at).count());
  }
  settle(request, index, outcome);
}

void JetStreamPublisher::settle(const std::shared_ptr<Request>& request, std::size_t index,
                                const PublishOutcome& outcome) {
  Done done;
  {
    std::lock_guard<std::mutex> lock(request->mutex);
    if (request->finished || request->settled[index]) return;
    request->settled[index] = true;
    request->outcomes[index] = outcome;
    release(room_of(request->messages[index]));
    if (--request->remaining > 0) return;
    request->finished = true;
    done = std::move(request->done);
  }
  done(std::move(request->outcomes));
}

void JetStreamPublisher::expire(const std::shared_ptr<Request>& request) {
  Done done;
  {
    std::lock_guard<std::mutex> lock(request->mutex);
    if (request->finished) return;
    for (std::size_t i = 0; i < request->outcomes.size(); ++i) {
      if (request->settled[i]) continue;
      request->settled[i] = true;
      release(room_of(request->messages[i]));
      request->outcomes[i].status = PublishStatus::kRetryable;
      request->outcomes[i].kind = PublishError::kTimeout;
      request->outcomes[i].error = "no PubAck within INGEST_PUBLISH_TIMEOUT";
    }
    request->remaining = 0;
    request->finished = true;
    done = std::move(request->done);
  }
  {
    std::lock_guard<std::mutex> lock(pending_mutex_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      it = it->second.request == request ? pending_.erase(it) : std::next(it);
    }
  }
  done(std::move(request->outcomes));
}

}  // namespace ingest
