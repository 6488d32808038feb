#include "message_source.hpp"

#include <cstdlib>

namespace processor {
namespace {

using pipeline::nats::check;
using pipeline::nats::MetaDataPtr;

// How long the incarnation check waits for the broker.
constexpr std::chrono::milliseconds kIdentityWait{2000};

std::int64_t header_number(natsMsg* msg, const char* name) {
  const char* value = nullptr;
  if (natsMsgHeader_Get(msg, name, &value) != NATS_OK || value == nullptr) return 0;
  return std::strtoll(value, nullptr, 10);
}

}  // namespace

MessageSource::MessageSource(jsCtx* js, pipeline::nats::StreamSettings stream,
                             pipeline::nats::ConsumerSettings consumer)
    : js_(js), stream_(std::move(stream)), consumer_(std::move(consumer)) {}

void MessageSource::subscribe() {
  reset();
  // A stream or consumer deleted under a running processor is made again
  // (as at start-up, never changing an existing one).
  pipeline::nats::create_if_missing(js_, stream_, consumer_);
  const auto before = pipeline::nats::stream_identity(js_, stream_.name, kIdentityWait);
  if (!before) {
    throw pipeline::nats::NatsError("stream " + stream_.name + " did not answer", NATS_TIMEOUT,
                                    static_cast<jsErrCode>(0));
  }
  natsSubscription* raw = nullptr;
  jsSubOptions opts;
  jsSubOptions_Init(&opts);
  opts.Stream = stream_.name.c_str();
  opts.Consumer = consumer_.durable.c_str();  // bind to the shared durable
  jsErrCode code = static_cast<jsErrCode>(0);
  const std::string filter = stream_.wildcard();
  check(
      js_PullSubscribe(&raw, js_, filter.c_str(), consumer_.durable.c_str(), nullptr, &opts, &code),
      "js_PullSubscribe", code);
  sub_.reset(raw);
  created_ = before->created;
}

void MessageSource::reset() {
  sub_.reset();
  created_ = 0;
}

natsStatus MessageSource::fetch(FetchedBatch& batch, int count, std::chrono::milliseconds wait,
                                bool no_wait, jsErrCode* code) {
  if (!no_wait) {
    return natsSubscription_Fetch(batch.list(), sub_.get(), count, wait.count(), code);
  }
  jsFetchRequest request;
  jsFetchRequest_Init(&request);
  request.Batch = count;
  request.NoWait = true;
  request.Expires = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
  return natsSubscription_FetchRequest(batch.list(), sub_.get(), &request);
}

std::vector<IncomingMessage> MessageSource::decode(const FetchedBatch& batch) const {
  std::vector<IncomingMessage> messages;
  messages.reserve(static_cast<std::size_t>(batch.size()));
  for (int i = 0; i < batch.size(); ++i) messages.push_back(decode_one(batch[i]));
  return messages;
}

IncomingMessage MessageSource::decode_one(natsMsg* msg) const {
  IncomingMessage m;
  m.position.created = created_;
  jsMsgMetaData* raw_meta = nullptr;
  if (natsMsg_GetMetaData(&raw_meta, msg) == NATS_OK) {
    MetaDataPtr meta(raw_meta);
    m.position.seq = meta->Sequence.Stream;
    m.consumer_seq = meta->Sequence.Consumer;
    m.deliveries = meta->NumDelivered > 0 ? meta->NumDelivered : 1;
  }
  m.subject = natsMsg_GetSubject(msg);
  m.published_micros = header_number(msg, pipeline::nats::kPublishedAtHeader);
  const char* header = nullptr;
  if (natsMsgHeader_Get(msg, pipeline::nats::kRequestIdHeader, &header) == NATS_OK &&
      header != nullptr) {
    m.request_id = header;
  }
  m.broker_duplicate_marker =
      natsMsgHeader_Get(msg, pipeline::nats::kBrokerDuplicateHeader, &header) == NATS_OK;
  m.data.assign(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
  return m;
}

std::optional<IncomingMessage> MessageSource::load(std::uint64_t seq) const {
  natsMsg* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetMsg(&raw, js_, stream_.name.c_str(), seq, nullptr, &code);
  if (status == NATS_NOT_FOUND || code == JSNoMessageFoundErr) return std::nullopt;
  check(status, "js_GetMsg", code);
  const pipeline::nats::MsgPtr msg(raw);
  IncomingMessage m = decode_one(msg.get());
  m.position.seq = seq;
  return m;
}

bool MessageSource::same_incarnation() const {
  const auto now = pipeline::nats::stream_identity(js_, stream_.name, kIdentityWait);
  return now && now->created == created_;
}

}  // namespace processor
