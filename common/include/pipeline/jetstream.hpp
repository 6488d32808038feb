#pragma once

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace pipeline::nats {

/// Message headers ingest sets besides Nats-Msg-Id: when it published the
/// event (microseconds since the epoch, for end-to-end latency) and the id of
/// the HTTP request it came in (for following one request through the logs).
inline constexpr const char* kPublishedAtHeader = "Pipeline-Published-At";
inline constexpr const char* kRequestIdHeader = "Pipeline-Request-Id";
/// Marks a count marker: for each request in which the broker's duplicate
/// window dropped events, ingest publishes one (body: how many, in decimal;
/// no Nats-Msg-Id), so that the processor counts broker duplicates in the
/// database in the same transactions as everything else, and ingest never
/// needs PostgreSQL to accept events.
inline constexpr const char* kBrokerDuplicateHeader = "Pipeline-Broker-Duplicate";

/// A failed nats.c call: the status, the JetStream error code (0 if none) and
/// nats.c's own description.
class NatsError : public std::runtime_error {
 public:
  NatsError(const std::string& what, natsStatus status, jsErrCode js_code);
  natsStatus status() const { return status_; }
  jsErrCode js_code() const { return js_code_; }

 private:
  natsStatus status_;
  jsErrCode js_code_;
};

/// Throws NatsError unless `status` is NATS_OK. The one place statuses turn
/// into exceptions.
void check(natsStatus status, const char* what, jsErrCode js_code = static_cast<jsErrCode>(0));

struct ConnectionDeleter {
  void operator()(natsConnection* c) const { natsConnection_Destroy(c); }
};
struct OptionsDeleter {
  void operator()(natsOptions* o) const { natsOptions_Destroy(o); }
};
struct JetStreamDeleter {
  void operator()(jsCtx* js) const { jsCtx_Destroy(js); }
};
struct SubscriptionDeleter {
  void operator()(natsSubscription* s) const { natsSubscription_Destroy(s); }
};
struct MsgDeleter {
  void operator()(natsMsg* m) const { natsMsg_Destroy(m); }
};
struct StreamInfoDeleter {
  void operator()(jsStreamInfo* si) const { jsStreamInfo_Destroy(si); }
};
struct ConsumerInfoDeleter {
  void operator()(jsConsumerInfo* ci) const { jsConsumerInfo_Destroy(ci); }
};
struct MetaDataDeleter {
  void operator()(jsMsgMetaData* m) const { jsMsgMetaData_Destroy(m); }
};

using ConnectionPtr = std::unique_ptr<natsConnection, ConnectionDeleter>;
using OptionsPtr = std::unique_ptr<natsOptions, OptionsDeleter>;
using JetStreamPtr = std::unique_ptr<jsCtx, JetStreamDeleter>;
using SubscriptionPtr = std::unique_ptr<natsSubscription, SubscriptionDeleter>;
using MsgPtr = std::unique_ptr<natsMsg, MsgDeleter>;
using StreamInfoPtr = std::unique_ptr<jsStreamInfo, StreamInfoDeleter>;
using ConsumerInfoPtr = std::unique_ptr<jsConsumerInfo, ConsumerInfoDeleter>;
using MetaDataPtr = std::unique_ptr<jsMsgMetaData, MetaDataDeleter>;

/// The stream every event goes to. Limits retention (never interest): the
/// stream keeps events for `max_age` so a consumer can be added or replayed.
struct StreamSettings {
  std::string name = "EVENTS";
  std::string subject_prefix = "events";  ///< subjects are "<prefix>.<topic>"
  std::chrono::milliseconds duplicate_window{std::chrono::minutes(2)};
  std::chrono::milliseconds max_age{std::chrono::hours(24 * 7)};  ///< 0 = no age limit
  std::int64_t max_bytes = -1;                                    ///< -1 = no size limit
  std::int64_t replicas = 1;

  std::string subject_for(const std::string& topic) const { return subject_prefix + "." + topic; }
  std::string wildcard() const { return subject_prefix + ".>"; }
};

/// The durable pull consumer the processors share.
struct ConsumerSettings {
  std::string durable = "processor";
  std::chrono::milliseconds ack_wait{std::chrono::seconds(30)};
  std::int64_t max_ack_pending = 20000;
};

/// Connects with unlimited reconnects, retrying the first connect until
/// `connect_timeout` passes. Throws NatsError when it never connects.
/// `send_asap` writes each publish to the socket at once instead of leaving
/// it to nats.c's flusher thread: lower latency for request/response work.
ConnectionPtr connect(const std::string& url, const std::string& client_name,
                      std::chrono::milliseconds connect_timeout, bool send_asap = false);

/// A JetStream context on `conn`; `opts` may be null.
JetStreamPtr jetstream(natsConnection* conn, jsOptions* opts = nullptr);

/// Creates the stream if missing, or updates it to these settings. Throws NatsError.
void ensure_stream(jsCtx* js, const StreamSettings& stream);

/// Creates the durable consumer if missing, or updates it. Throws NatsError.
void ensure_consumer(jsCtx* js, const StreamSettings& stream, const ConsumerSettings& consumer);

/// Runs `setup` (say, ensure_stream) until it succeeds, again every 500 ms
/// while it throws NatsError and `timeout` has not passed (a JetStream
/// cluster answers "unavailable" while it elects its leaders), with a log
/// line per failure; then rethrows the last error.
void retry_setup(const char* what, std::chrono::milliseconds timeout,
                 const std::function<void()>& setup);

/// How much the consumer still has to do.
struct ConsumerBacklog {
  std::uint64_t pending = 0;      ///< not yet delivered
  std::uint64_t ack_pending = 0;  ///< delivered, not yet acked
};

/// The consumer's backlog, or nullopt when the broker cannot say.
std::optional<ConsumerBacklog> consumer_backlog(jsCtx* js, const std::string& stream,
                                                const std::string& durable);

/// True when the stream exists (throws NatsError if the broker cannot say
/// within `wait`; zero means the context's own timeout).
bool stream_exists(jsCtx* js, const std::string& stream,
                   std::chrono::milliseconds wait = std::chrono::milliseconds(0));

}  // namespace pipeline::nats
