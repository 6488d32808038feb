// The owner check of a duplicate PubAck: when a message published again
// (its PubAck lost) is answered "duplicate", the stored copy may be this
// very request's first attempt. The stored message's publish id says, read
// with an asynchronous request on the stream's message-get API, answered on
// a subscription of the publisher's own: no thread waits for it.
#include <nlohmann/json.hpp>

#include "ingest/publisher.hpp"
#include "pipeline/base64.hpp"
#include "pipeline/logging.hpp"
#include "publishing/publisher_request.hpp"
#include "publishing/timer_queue.hpp"

namespace ingest {
namespace {

using Clock = std::chrono::steady_clock;

// An owner request waits this long for its answer before it is asked again
// (or, past the request's deadline, given up).
constexpr auto kOwnerWait = std::chrono::milliseconds(1000);

// The value of `name` in a NATS header block ("NATS/1.0\r\nName: value\r\n...").
std::optional<std::string> header_value(const std::string& block, const std::string& name) {
  const std::string key = "\r\n" + name + ":";
  const std::size_t at = block.find(key);
  if (at == std::string::npos) return std::nullopt;
  std::size_t start = at + key.size();
  while (start < block.size() && block[start] == ' ') ++start;
  const std::size_t end = block.find("\r\n", start);
  return block.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

}  // namespace

void JetStreamPublisher::start_owner_checks(natsConnection* conn) {
  natsInbox* inbox = nullptr;
  if (natsInbox_Create(&inbox) != NATS_OK) return;
  owner_inbox_ = inbox;
  natsInbox_Destroy(inbox);
  const std::string subject = owner_inbox_ + ".*";
  if (natsConnection_Subscribe(&owner_sub_, conn, subject.c_str(),
                               &JetStreamPublisher::on_owner_reply, this) != NATS_OK) {
    owner_sub_ = nullptr;
  }
}

void JetStreamPublisher::stop_owner_checks() {
  if (owner_sub_ != nullptr) {
    natsSubscription_Unsubscribe(owner_sub_);
    // Waits for a callback under way, so none runs after this.
    natsSubscription_WaitForDrainCompletion(owner_sub_, 1000);
    natsSubscription_Destroy(owner_sub_);
    owner_sub_ = nullptr;
  }
}

void JetStreamPublisher::check_owner(const std::shared_ptr<Request>& request, std::size_t index,
                                     PublishOutcome duplicate) {
  std::uint64_t token = 0;
  {
    std::lock_guard<std::mutex> lock(owner_mutex_);
    token = ++next_owner_token_;
    owner_checks_[token] = OwnerCheck{request, index, std::move(duplicate), Clock::now()};
  }
  post([this, token] { ask_owner(token); });
}

// On the sender thread: the request goes out like any publish, buffered.
void JetStreamPublisher::ask_owner(std::uint64_t token) {
  std::uint64_t sequence = 0;
  {
    std::lock_guard<std::mutex> lock(owner_mutex_);
    const auto it = owner_checks_.find(token);
    if (it == owner_checks_.end()) return;
    sequence = it->second.duplicate.stream_seq;
    it->second.asked_at = Clock::now();
  }
  const std::string subject = "$JS.API.STREAM.MSG.GET." + stream_.name;
  const std::string reply = owner_inbox_ + "." + std::to_string(token);
  const std::string body = "{\"seq\":" + std::to_string(sequence) + "}";
  if (owner_sub_ == nullptr ||
      natsConnection_PublishRequestString(conn_, subject.c_str(), reply.c_str(), body.c_str()) !=
          NATS_OK) {
    owner_answered(token, std::nullopt);
  }
}

void JetStreamPublisher::on_owner_reply(natsConnection* /*conn*/, natsSubscription* /*sub*/,
                                        natsMsg* msg, void* closure) {
  auto* self = static_cast<JetStreamPublisher*>(closure);
  pipeline::nats::MsgPtr holder(msg);
  const std::string subject = natsMsg_GetSubject(msg);
  const std::uint64_t token =
      std::strtoull(subject.substr(subject.rfind('.') + 1).c_str(), nullptr, 10);
  std::string ours;
  {
    std::lock_guard<std::mutex> lock(self->owner_mutex_);
    const auto it = self->owner_checks_.find(token);
    if (it == self->owner_checks_.end()) return;  // answered late: already settled
    ours = it->second.request->publish_id + "." + std::to_string(it->second.index);
  }
  std::optional<bool> result;
  const auto reply = nlohmann::json::parse(
      std::string_view(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))),
      nullptr, false);
  if (reply.is_object() && reply.contains("message") && reply["message"].is_object()) {
    const auto& message = reply["message"];
    std::string headers;
    if (message.contains("hdrs") && message["hdrs"].is_string()) {
      headers = pipeline::base64_decode(message["hdrs"].get<std::string>()).value_or("");
    }
    result = header_value(headers, kPublishIdHeader) == ours;
  }
  self->owner_answered(token, result);
}

// `ours`: whether the stored copy is this request's own; nullopt when the
// broker did not say (asked again while the request has time).
void JetStreamPublisher::owner_answered(std::uint64_t token, std::optional<bool> ours) {
  OwnerCheck check;
  {
    std::lock_guard<std::mutex> lock(owner_mutex_);
    const auto it = owner_checks_.find(token);
    if (it == owner_checks_.end()) return;
    check = std::move(it->second);
    owner_checks_.erase(it);
  }
  if (ours) {
    PublishOutcome outcome = check.duplicate;
    if (*ours) outcome.status = PublishStatus::kAccepted;  // our own earlier attempt stored it
    settle(check.request, check.index, outcome);
    return;
  }
  const auto now = Clock::now();
  if (now + std::chrono::milliseconds(100) < check.request->deadline) {
    timers_->at(now + std::chrono::milliseconds(100),
                [this, check] { check_owner(check.request, check.index, check.duplicate); });
    return;
  }
  PublishOutcome unknown;
  unknown.kind = PublishError::kOther;
  unknown.error = "stored, but not known whether by this request (retry it)";
  settle(check.request, check.index, unknown);
}

// On the timer thread: owner requests without an answer in time.
void JetStreamPublisher::expire_owner_checks() {
  std::vector<std::uint64_t> late;
  {
    std::lock_guard<std::mutex> lock(owner_mutex_);
    const auto now = Clock::now();
    for (const auto& [token, check] : owner_checks_) {
      if (now - check.asked_at >= kOwnerWait) late.push_back(token);
    }
  }
  for (const std::uint64_t token : late) owner_answered(token, std::nullopt);
}

}  // namespace ingest
