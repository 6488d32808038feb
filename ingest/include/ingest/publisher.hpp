#pragma once

#include <nats/nats.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "pipeline/event.hpp"
#include "pipeline/jetstream.hpp"

namespace ingest {

/// What the broker said about one event.
enum class PublishStatus {
  kAccepted,   ///< PubAck: stored in the stream
  kDuplicate,  ///< PubAck with Duplicate: already in the broker's window
  kRetryable,  ///< no PubAck (timeout, broker unreachable, stream full): safe to retry
  kPermanent,  ///< the broker refuses this message for good (e.g. too large)
};

struct PublishOutcome {
  PublishStatus status = PublishStatus::kRetryable;
  std::uint64_t stream_seq = 0;
  std::string error;
  /// For errors: timeout, no_responders, stream_full or other.
  std::string error_kind;
};

struct IngestMetrics;

/// What a PubAck says: stored (kAccepted), or already in the duplicate
/// window (kDuplicate). A duplicate with sequence 0 is not stored: in a
/// cluster, an id staged for a write that a leader change then dropped is
/// answered that way, so it is a failure to retry (kRetryable).
PublishOutcome outcome_of_puback(bool duplicate, std::uint64_t sequence);

/// Publishes events to JetStream asynchronously, one message each on
/// "<prefix>.<topic>" with Nats-Msg-Id "<topic>:<event_id>", and waits for
/// every PubAck. Thread-safe: many requests publish at once on one context.
class JetStreamPublisher {
 public:
  /// `metrics` may be null.
  JetStreamPublisher(natsConnection* conn, pipeline::nats::StreamSettings stream,
                     std::chrono::milliseconds publish_timeout, IngestMetrics* metrics = nullptr);
  ~JetStreamPublisher();
  JetStreamPublisher(const JetStreamPublisher&) = delete;
  JetStreamPublisher& operator=(const JetStreamPublisher&) = delete;

  /// One outcome per event, in order. Returns when every event has its
  /// PubAck or error, or when the publish timeout passed (those events are
  /// kRetryable). Never throws for broker trouble.
  /// `request_id` goes into each message's Pipeline-Request-Id header.
  std::vector<PublishOutcome> publish(const std::vector<const pipeline::Event*>& events,
                                      const std::string& request_id = "");

  /// Publishes the count marker of `duplicates` events the broker reported
  /// as duplicates (see pipeline::nats::kBrokerDuplicateHeader), on the
  /// subject of `topic`, and waits for its PubAck like publish(). Without a
  /// PubAck those duplicates are to be retried: the retry counts them.
  PublishOutcome publish_duplicate_marker(const std::string& topic, std::size_t duplicates,
                                          const std::string& request_id = "");

  jsCtx* context() const { return js_.get(); }

 private:
  struct Waiter;
  struct Pending {
    std::shared_ptr<Waiter> waiter;
    std::size_t index;
    std::chrono::steady_clock::time_point sent_at;
  };
  struct Outgoing {
    std::string subject;
    std::string data;
    std::string message_id;  ///< Nats-Msg-Id; empty for a count marker
  };
  std::vector<PublishOutcome> publish_messages(const std::vector<Outgoing>& messages,
                                               const std::string& request_id);
  static void on_ack(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);
  void complete(natsMsg* msg, const PublishOutcome& outcome);

  pipeline::nats::StreamSettings stream_;
  std::chrono::milliseconds publish_timeout_;
  IngestMetrics* metrics_;
  pipeline::nats::JetStreamPtr js_;
  std::mutex pending_mutex_;
  std::unordered_map<const natsMsg*, Pending> pending_;
};

}  // namespace ingest
