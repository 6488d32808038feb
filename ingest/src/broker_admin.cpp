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
  std::lock_guard<std::mutex> lock(mutex_);
  // The stream before and after the consumer: a floor read across a
  // re-creation of the stream would be paired with the wrong incarnation.
  const auto before = pipeline::nats::stream_identity(js_.get(), stream_);
  if (!before) return std::nullopt;
  const auto floor = pipeline::nats::ack_floor(js_.get(), stream_, durable_);
  if (!floor) return std::nullopt;
  const auto after = pipeline::nats::stream_identity(js_.get(), stream_);
  if (!after || after->created != before->created) return std::nullopt;
  return EventPosition{before->created, *floor};
}

}  // namespace ingest
