#pragma once

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "pipeline/event.hpp"
#include "pipeline/jetstream.hpp"

namespace ingest {

/// Header of each message: which publish() call and which of its messages
/// it is, so that a duplicate PubAck for a repeat can be told apart from one
/// for somebody else's copy.
inline constexpr const char* kPublishIdHeader = "Pipeline-Publish-Id";

/// What the broker said about one message.
enum class PublishStatus {
  kAccepted,   ///< PubAck: stored in the stream
  kDuplicate,  ///< PubAck with Duplicate: already in the broker's window
  kRetryable,  ///< no PubAck in time, broker unreachable, stream full: safe to retry
  kPermanent,  ///< the broker refuses this message for good (e.g. too large)
};

/// Why a publish failed (a metric label; PublishError::kNone when it did not).
enum class PublishError {
  kNone,
  kTimeout,       ///< no PubAck within INGEST_PUBLISH_TIMEOUT
  kNoResponders,  ///< no stream (leader) answered
  kStreamFull,    ///< a limit of the stream or of the broker's storage
  kNotStored,     ///< a duplicate PubAck with sequence 0: not stored (a leader change)
  kCapacity,      ///< INGEST_MAX_PENDING_PUBLISHES messages already wait for PubAcks
  kStorageFull,   ///< the events table is past EVENTS_MAX_BYTES by a tenth
  kOther,
};
/// The label value of `error` in pipeline_ingest_publish_errors_total.
const char* publish_error_name(PublishError error);

struct PublishOutcome {
  PublishStatus status = PublishStatus::kRetryable;
  std::uint64_t stream_seq = 0;
  PublishError kind = PublishError::kNone;
  std::string error;  ///< for failures: what the broker or the library said
};

/// What a PubAck says: stored (kAccepted), or already in the duplicate
/// window (kDuplicate). A duplicate with sequence 0 is not stored: in a
/// cluster, an id staged for a write that a leader change then dropped is
/// answered that way, so it is a failure to retry (kRetryable).
PublishOutcome outcome_of_puback(bool duplicate, std::uint64_t sequence);

/// One message to publish.
struct OutgoingMessage {
  std::string subject;
  std::string data;
  std::string message_id;  ///< Nats-Msg-Id; empty for a count marker (its id is per request)
};

struct IngestMetrics;
class TimerQueue;

/// Publishes messages to JetStream asynchronously, events on
/// "<prefix>.<topic>" with Nats-Msg-Id "<topic>:<event_id>", and reports one
/// outcome per message once every PubAck is in. Thread-safe: many requests
/// publish at once on one context. No caller ever waits: the messages go
/// to the broker from a thread of the publisher's own (so a broker that
/// takes no bytes holds up that thread alone), at most `capacity` of them
/// wait for their PubAcks at once (admit() says when there is no room, so
/// nats.c's own limit, which would block, is never reached), and the check
/// of a duplicate PubAck's owner is an asynchronous request.
class JetStreamPublisher {
 public:
  using Done = std::function<void(std::vector<PublishOutcome>)>;
  /// Room taken by messages awaiting their PubAcks.
  struct Room {
    std::size_t messages = 0;
    std::size_t bytes = 0;
  };
  /// What a count marker takes (its body is a number).
  static constexpr std::size_t kMarkerBytes = 32;

  /// `metrics` may be null. `capacity`: INGEST_MAX_PENDING_PUBLISHES and
  /// INGEST_MAX_PENDING_PUBLISH_BYTES.
  JetStreamPublisher(natsConnection* conn, pipeline::nats::StreamSettings stream,
                     std::chrono::milliseconds publish_timeout, IngestMetrics* metrics = nullptr,
                     Room capacity = {50000, std::size_t{64} << 20});
  ~JetStreamPublisher();
  JetStreamPublisher(const JetStreamPublisher&) = delete;
  JetStreamPublisher& operator=(const JetStreamPublisher&) = delete;

  /// Publishes `messages` and calls `done` exactly once, with one outcome per
  /// message in order, when each has its PubAck or has failed for good, at
  /// the latest about INGEST_PUBLISH_TIMEOUT after the call. A message that
  /// fails for a reason that passes (no PubAck in time, no responders while
  /// a cluster elects a leader, a duplicate with sequence 0) is published
  /// again with the same Nats-Msg-Id while time remains; a duplicate PubAck
  /// for such a repeat is checked against the stored message, so that the
  /// request's own first attempt is not taken for somebody else's copy.
  /// `done` runs on a broker or timer thread (on the caller's thread only
  /// when every message failed at once); it must not block. Never throws for
  /// broker trouble. `request_id` goes into each message's headers.
  /// `admitted`: room for the messages was taken with admit(); otherwise
  /// publish() takes it, and when there is none every message fails at
  /// once (PublishError::kCapacity).
  void publish(std::vector<OutgoingMessage> messages, const std::string& request_id, Done done,
               bool admitted = false);

  /// Takes room for messages awaiting PubAcks; false (nothing taken) when
  /// it would pass the publisher's capacity in messages or in bytes. What
  /// publish() then settles gives it back; release() gives back what is not
  /// published.
  bool admit(Room room);
  void release(Room room);
  /// What awaits PubAcks now.
  Room in_flight() const;

  /// publish() and wait for `done`: for tools and tests.
  std::vector<PublishOutcome> publish_and_wait(std::vector<OutgoingMessage> messages,
                                               const std::string& request_id = "");

  /// The message for an event: its subject, its JSON, its Nats-Msg-Id.
  OutgoingMessage event_message(const pipeline::Event& event) const;
  /// The count marker of `duplicates` events the broker reported as
  /// duplicates (see pipeline::nats::kBrokerDuplicateHeader), on the subject
  /// of `topic`.
  OutgoingMessage marker_message(const std::string& topic, std::size_t duplicates) const;

 private:
  struct Request;
  struct Attempt {
    std::shared_ptr<Request> request;
    std::size_t index;
    std::chrono::steady_clock::time_point sent_at;
  };
  struct OwnerCheck {
    std::shared_ptr<Request> request;
    std::size_t index = 0;
    PublishOutcome duplicate;
    std::chrono::steady_clock::time_point asked_at;
  };
  // Runs `task` on the sender thread (the only one that writes to nats.c).
  void post(std::function<void()> task);
  void run_sender();
  void send(const std::shared_ptr<Request>& request, std::size_t index);
  void send_now(const std::shared_ptr<Request>& request, std::size_t index);
  // publisher_owner.cpp
  void start_owner_checks(natsConnection* conn);
  void stop_owner_checks();
  void ask_owner(std::uint64_t token);
  static void on_owner_reply(natsConnection* conn, natsSubscription* sub, natsMsg* msg,
                             void* closure);
  void owner_answered(std::uint64_t token, std::optional<bool> ours);
  void expire_owner_checks();
  void on_outcome(const std::shared_ptr<Request>& request, std::size_t index,
                  const PublishOutcome& outcome, std::chrono::steady_clock::time_point sent_at);
  void check_owner(const std::shared_ptr<Request>& request, std::size_t index,
                   PublishOutcome duplicate);
  void settle(const std::shared_ptr<Request>& request, std::size_t index,
              const PublishOutcome& outcome);
  void expire(const std::shared_ptr<Request>& request);
  void schedule_sweep();
  void sweep_expired();
  static void on_ack(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);

  pipeline::nats::StreamSettings stream_;
  std::chrono::milliseconds publish_timeout_;
  std::chrono::milliseconds attempt_wait_;
  IngestMetrics* metrics_;
  std::string instance_id_;
  std::atomic<std::uint64_t> next_publish_{0};
  pipeline::nats::JetStreamPtr js_;
  std::mutex pending_mutex_;
  std::unordered_map<const natsMsg*, Attempt> pending_;
  // The message the sender is handing to js_PublishMsgAsync. nats.c arms a
  // message's MaxWait timer before it writes the message out, so its
  // timeout can reach on_ack while the sender still reads the message;
  // on_ack then leaves the destroy to the sender (under pending_mutex_).
  const natsMsg* publishing_ = nullptr;
  bool publishing_answered_ = false;
  std::mutex expiry_mutex_;
  /// Requests by deadline (+ margin), oldest first.
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::weak_ptr<Request>>> expiry_;
  std::unique_ptr<TimerQueue> timers_;
  const Room capacity_;
  mutable std::mutex room_mutex_;
  Room in_flight_;
  // The sender thread and its queue.
  std::mutex send_mutex_;
  std::condition_variable send_wake_;
  std::deque<std::function<void()>> send_queue_;
  bool send_quit_ = false;
  std::thread sender_;
  // Owner checks: requests on the stream's message-get API, answered on a
  // subscription of their own.
  natsConnection* conn_ = nullptr;
  std::string owner_inbox_;
  natsSubscription* owner_sub_ = nullptr;
  std::mutex owner_mutex_;
  std::unordered_map<std::uint64_t, OwnerCheck> owner_checks_;
  std::uint64_t next_owner_token_ = 0;
};

}  // namespace ingest
