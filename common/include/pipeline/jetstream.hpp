#pragma once

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

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

/// What a start-up does when the running stream or consumer was configured
/// differently from its own settings (STREAM_UPDATE).
enum class ConfigUpdate {
  /// Keep the running configuration, and log each difference: a start-up
  /// never changes what another process set up, and never shrinks a limit
  /// (nats-server enforces a smaller max_bytes or max_age at once, deleting
  /// stored events, whatever the discard policy).
  kKeep,
  /// Apply this process's settings to the running stream and consumer
  /// (logged, with a warning for a change that can delete stored events).
  kApply,
};

/// The stream every event goes to. Limits retention (never interest): the
/// stream keeps events for `max_age` so a consumer can be added or replayed.
struct StreamSettings {
  std::string name = "EVENTS";
  std::string subject_prefix = "events";  ///< subjects are "<prefix>.<topic>"
  std::chrono::milliseconds duplicate_window{std::chrono::minutes(2)};
  std::chrono::milliseconds max_age{std::chrono::hours(24 * 7)};  ///< 0 = no age limit
  /// 4 GiB: room for millions of unprocessed events; acked ones are purged
  /// once half of it is taken (processor). -1 = no size limit.
  std::int64_t max_bytes = std::int64_t{4} << 30;
  /// STREAM_MAX_BYTES=auto (the default): max_bytes is halved, down to 1
  /// MiB, until the broker can reserve it when the stream is made, and a
  /// running stream's limit is kept whatever it is.
  bool max_bytes_auto = false;
  std::int64_t replicas = 1;
  ConfigUpdate update = ConfigUpdate::kKeep;

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
/// The broker is pinged every `ping_interval`; three pings without an
/// answer end the connection (and a reconnect begins), so a broker that
/// says nothing is noticed in about three intervals.
ConnectionPtr connect(const std::string& url, const std::string& client_name,
                      std::chrono::milliseconds connect_timeout, bool send_asap = false,
                      std::chrono::milliseconds ping_interval = std::chrono::seconds(2));

/// A JetStream context on `conn`; `opts` may be null.
JetStreamPtr jetstream(natsConnection* conn, jsOptions* opts = nullptr);

/// One setting on which the running stream or consumer differs from a
/// process's settings.
struct ConfigDifference {
  std::string setting;             ///< the variable, e.g. STREAM_MAX_BYTES
  std::string running;             ///< its value in the broker
  std::string wanted;              ///< this process's value
  bool can_delete_events = false;  ///< applying it can delete stored events
};

/// The differences between a running stream's configuration and `stream`.
std::vector<ConfigDifference> stream_differences(const jsStreamConfig& running,
                                                 const StreamSettings& stream);

/// Creates the stream if missing. When it exists and differs from `stream`,
/// logs each difference and, as `stream.update` says, keeps it or applies
/// `stream`. Returns the differences found. Throws NatsError.
std::vector<ConfigDifference> ensure_stream(jsCtx* js, const StreamSettings& stream);

/// Creates the durable consumer if missing; an existing one is kept or
/// updated as `stream.update` says. Returns the consumer's settings in
/// effect (those of the running consumer when kept). Throws NatsError.
ConsumerSettings ensure_consumer(jsCtx* js, const StreamSettings& stream,
                                 const ConsumerSettings& consumer);

/// Creates the stream and the durable consumer where either is missing (say,
/// deleted under a running processor); leaves existing ones alone, without
/// a word. Throws NatsError.
void create_if_missing(jsCtx* js, const StreamSettings& stream, const ConsumerSettings& consumer);

/// The identity and extent of a stream: its creation time (nanoseconds;
/// changes when the stream is deleted and created again, which restarts its
/// sequences at 1) and its first and last sequence.
struct StreamIdentity {
  std::int64_t created = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
};

/// The stream's identity, or nullopt when the broker cannot say (within
/// `wait`; zero means the context's own timeout) or the stream is missing.
std::optional<StreamIdentity> stream_identity(
    jsCtx* js, const std::string& stream,
    std::chrono::milliseconds wait = std::chrono::milliseconds(0));

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

/// The durable consumer's ack floor (the stream sequence at or below which
/// every message is acked) and its creation time (nanoseconds: a consumer
/// made again, as it must be after its stream was, has another).
struct AckFloor {
  std::uint64_t stream_seq = 0;
  std::int64_t consumer_created = 0;
};

/// The consumer's ack floor, or nullopt when the broker cannot say.
std::optional<AckFloor> ack_floor(jsCtx* js, const std::string& stream, const std::string& durable);

/// True when the stream exists (throws NatsError if the broker cannot say
/// within `wait`; zero means the context's own timeout).
bool stream_exists(jsCtx* js, const std::string& stream,
                   std::chrono::milliseconds wait = std::chrono::milliseconds(0));

}  // namespace pipeline::nats
