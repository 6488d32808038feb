#include "health/broker_admin.hpp"

namespace ingest {
namespace {

// A readiness probe must answer before its caller gives up (Kubernetes
// waits 1 s by default): a broker that does not answer the stream lookup in
// this time is "not responding".
constexpr std::chrono::milliseconds kReadyCheckWait{800};

// Every other question (the backlog, the ack floor) waits at most this long.
constexpr std::chrono::milliseconds kRequestWait{2000};

pipeline::nats::JetStreamPtr admin_context(natsConnection* conn) {
  jsOptions opts;
  jsOptions_Init(&opts);
  opts.Wait = kRequestWait.count();
  return pipeline::nats::jetstream(conn, &opts);
}

}  // namespace

BrokerAdmin::BrokerAdmin(natsConnection* conn, std::string stream, std::string durable)
    : conn_(conn),
      stream_(std::move(stream)),
      durable_(std::move(durable)),
      js_(admin_context(conn)) {}

bool BrokerAdmin::connected() const {
  return natsConnection_Status(conn_) == NATS_CONN_STATUS_CONNECTED;
}

// No lock is held across a broker request: the context is safe to share,
// and a slow answer to one question must not hold up the others.
BrokerStatus BrokerAdmin::probe() {
  BrokerStatus status;
  if (connected()) {
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
  return pipeline::nats::consumer_backlog(js_.get(), stream_, durable_);
}

std::optional<EventPosition> BrokerAdmin::settled() {
  using pipeline::nats::ack_floor;
  using pipeline::nats::stream_identity;
  auto floor = ack_floor(js_.get(), stream_, durable_);
  if (!floor) return std::nullopt;
  // One request a round while the consumer is the one last seen: deleting
  // the stream deletes its consumers, so the same consumer means the same
  // stream. A new consumer: read the stream's incarnation around it, so
  // that a floor is never paired with another incarnation's.
  std::optional<std::int64_t> created;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stream_created_ && floor->consumer_created == consumer_created_) created = stream_created_;
  }
  if (!created) {
    const auto before = stream_identity(js_.get(), stream_);
    floor = ack_floor(js_.get(), stream_, durable_);
    const auto after = stream_identity(js_.get(), stream_);
    if (!before || !floor || !after || before->created != after->created) return std::nullopt;
    created = before->created;
    std::lock_guard<std::mutex> lock(mutex_);
    stream_created_ = created;
    consumer_created_ = floor->consumer_created;
  }
  return EventPosition{*created, floor->stream_seq};
}

}  // namespace ingest
