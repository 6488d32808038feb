#pragma once

#include <mutex>
#include <string>

#include "health/readiness.hpp"
#include "pipeline/jetstream.hpp"
#include "queries/stats_service.hpp"
#include "subscriptions/subscription_hub.hpp"

namespace ingest {

/// The broker questions /ready, /stats and /metrics ask, on one JetStream
/// context of its own (the publisher's stays free for publishing). Each
/// question has its own time limit, and none waits for another.
class BrokerAdmin final : public BrokerProbe, public BacklogReader, public SettledSource {
 public:
  BrokerAdmin(natsConnection* conn, std::string stream, std::string durable);

  BrokerStatus probe() override;
  std::optional<pipeline::nats::ConsumerBacklog> backlog() override;
  std::optional<EventPosition> settled() override;

 private:
  /// The client's own view, no round trip, but under the connection's lock,
  /// which a write to a silent broker holds for up to nats.c's write
  /// deadline (2 s): for the health check's thread, never an HTTP path
  /// (they read DependencyMonitor's last word).
  bool connected() const;

  natsConnection* conn_;
  std::string stream_;
  std::string durable_;
  std::mutex mutex_;  // guards the two fields below only, never a request
  pipeline::nats::JetStreamPtr js_;
  std::optional<std::int64_t> stream_created_;  // the incarnation of the consumer below
  std::int64_t consumer_created_ = 0;
};

}  // namespace ingest
