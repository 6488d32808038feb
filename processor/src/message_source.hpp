#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/jetstream.hpp"
#include "processor/message.hpp"

namespace processor {

/// Owns the messages of one Fetch (natsMsgList_Destroy frees them).
class FetchedBatch {
 public:
  FetchedBatch() = default;
  ~FetchedBatch() { natsMsgList_Destroy(&list_); }
  FetchedBatch(const FetchedBatch&) = delete;
  FetchedBatch& operator=(const FetchedBatch&) = delete;

  natsMsgList* list() { return &list_; }
  int size() const { return list_.Count; }
  natsMsg* operator[](int i) const { return list_.Msgs[i]; }

 private:
  natsMsgList list_{nullptr, 0};
};

/// One worker's pull subscription on the shared durable consumer, and the
/// incarnation of the stream it reads: every message it hands out carries
/// the stream's creation time with its sequence. Not thread-safe: one per
/// worker.
class MessageSource {
 public:
  MessageSource(jsCtx* js, pipeline::nats::StreamSettings stream,
                pipeline::nats::ConsumerSettings consumer);

  /// Subscribes (creating the stream and the consumer when missing) and
  /// learns the stream's incarnation. Throws NatsError.
  void subscribe();
  bool subscribed() const { return static_cast<bool>(sub_); }
  /// Drops the subscription; the next subscribe() starts afresh.
  void reset();

  /// Up to `count` messages, waiting at most `wait`; NATS_TIMEOUT (or an
  /// empty batch) means nothing yet. With `no_wait`, takes what has arrived
  /// already and what the broker has at once, and leaves no pull request
  /// behind.
  natsStatus fetch(FetchedBatch& batch, int count, std::chrono::milliseconds wait, bool no_wait,
                   jsErrCode* code);

  /// The fetched messages with their stream positions and headers.
  std::vector<IncomingMessage> decode(const FetchedBatch& batch) const;
  /// The stream's message at `seq` (not a delivery: nothing to ack), or
  /// nothing when the stream no longer holds it. Throws NatsError when the
  /// broker does not say.
  std::optional<IncomingMessage> load(std::uint64_t seq) const;

  /// True when the stream is still the incarnation this subscription was
  /// made for, so the messages fetched since belong to it. (A stream deleted
  /// and created again restarts its sequences; a consumer of the new one
  /// could otherwise answer this subscription's pull requests.) Asks the
  /// broker once.
  bool same_incarnation() const;

  std::int64_t incarnation() const { return created_; }

 private:
  jsCtx* js_;
  pipeline::nats::StreamSettings stream_;
  pipeline::nats::ConsumerSettings consumer_;
  IncomingMessage decode_one(natsMsg* msg) const;

  pipeline::nats::SubscriptionPtr sub_;
  std::int64_t created_ = 0;
};

}  // namespace processor
