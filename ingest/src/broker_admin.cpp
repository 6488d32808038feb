#include "broker_admin.hpp"

namespace ingest {
namespace {

// A readiness probe must answer before its caller gives up (Kubernetes
// waits 1 s by default): a broker that does not answer the stream lookup in
// this time is "not responding".
constexpr std::chrono::milliseconds kReadyCheckWait{800};

}  // namespace

BrokerAdmin::BrokerAdmin(natsConnection* conn, std::string stream, std::string durable)
    : conn_(conn),
      stream_(std::move(stream)),
      durable_(std::move(durable)),
      js_(pipeline::nats::jetstream(conn)) {}

bool BrokerAdmin::connected() const {
  return natsConnection_Status(conn_) == NATS_CONN_STATUS_CONNECTED;
}

BrokerStatus BrokerAdmin::probe() {
  BrokerStatus status;
  if (connected()) {
    std::lock_guard<std::mutex> lock(mutex_);
    try {
      status.stream = pipeline::nats::stream_exists(js_.get(), stream_, kReadyCheckWait);
      status.answered = true;
    } catch (const std::exception&) {
      status.answered = false;
    }
  }
  status.connected = connected();
  return status;
}

std::optional<pipeline::nats::ConsumerBacklog> BrokerAdmin::backlog() {
  std::lock_guard<std::mutex> lock(mutex_);
  return pipeline::nats::consumer_backlog(js_.get(), stream_, durable_);
}

std::optional<EventPosition> BrokerAdmin::settled() {
  using pipeline::nats::ack_floor;
  using pipeline::nats::stream_identity;
  std::lock_guard<std::mutex> lock(mutex_);
  auto floor = ack_floor(js_.get(), stream_, durable_);
  if (!floor) return std::nullopt;
  // One request a round while the consumer is the one last seen: deleting
  // the stream deletes its consumers, so the same consumer means the same
  // stream. A new consumer: read the stream's incarnation around it, so
  // that a floor is never paired with another incarnation's.
  if (!stream_created_ || floor->consumer_created != consumer_created_) {
    const auto before = stream_identity(js_.get(), stream_);
    floor = ack_floor(js_.get(), stream_, durable_);
    const auto after = stream_identity(js_.get(), stream_);
    if (!before || !floor || !after || before->created != after->created) return std::nullopt;
    stream_created_ = before->created;
    consumer_created_ = floor->consumer_created;
  }
  return EventPosition{*stream_created_, floor->stream_seq};
}

}  // namespace ingest
