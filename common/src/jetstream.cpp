#include "pipeline/jetstream.hpp"

#include "pipeline/logging.hpp"
#include "pipeline/settings.hpp"

#include <algorithm>
#include <thread>
#include <vector>

namespace pipeline::nats {
namespace {

constexpr std::int64_t kNanosPerMilli = 1'000'000;

std::string describe(natsStatus status, const char* what, jsErrCode js_code) {
  std::string text = std::string(what) + ": " + natsStatus_GetText(status);
  if (js_code != 0) text += " (JetStream error " + std::to_string(js_code) + ")";
  if (const char* last = nats_GetLastError(nullptr); last != nullptr && last[0] != '\0') {
    text += ": ";
    text += last;
  }
  return text;
}

void fill_stream_config(jsStreamConfig* cfg, const StreamSettings& stream, const char** subjects) {
  jsStreamConfig_Init(cfg);
  cfg->Name = stream.name.c_str();
  cfg->Subjects = subjects;
  cfg->SubjectsLen = 1;
  cfg->Storage = js_FileStorage;
  cfg->Retention = js_LimitsPolicy;
  // When the stream is full, refuse new events (ingest answers 503) rather
  // than silently deleting old ones that may not be processed yet.
  cfg->Discard = js_DiscardNew;
  cfg->Duplicates = stream.duplicate_window.count() * kNanosPerMilli;
  cfg->MaxAge = stream.max_age.count() * kNanosPerMilli;
  cfg->MaxBytes = stream.max_bytes;
  cfg->Replicas = stream.replicas;
}

}  // namespace

NatsError::NatsError(const std::string& what, natsStatus status, jsErrCode js_code)
    : std::runtime_error(what), status_(status), js_code_(js_code) {}

void check(natsStatus status, const char* what, jsErrCode js_code) {
  if (status != NATS_OK) throw NatsError(describe(status, what, js_code), status, js_code);
}

JetStreamPtr jetstream(natsConnection* conn, jsOptions* opts) {
  jsCtx* js = nullptr;
  check(natsConnection_JetStream(&js, conn, opts), "natsConnection_JetStream");
  return JetStreamPtr(js);
}

bool stream_exists(jsCtx* js, const std::string& stream, std::chrono::milliseconds wait) {
  jsOptions opts;
  jsOptions_Init(&opts);
  opts.Wait = wait.count();
  jsStreamInfo* si = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status =
      js_GetStreamInfo(&si, js, stream.c_str(), wait.count() > 0 ? &opts : nullptr, &code);
  StreamInfoPtr holder(si);
  if (status == NATS_NOT_FOUND) return false;
  check(status, "js_GetStreamInfo", code);
  return true;
}

std::vector<ConfigDifference> stream_differences(const jsStreamConfig& running,
                                                 const StreamSettings& stream) {
  std::vector<ConfigDifference> out;
  // A limit of 0 or less is no limit; a smaller limit, or a limit where there
  // was none, makes the broker delete what no longer fits.
  const auto shrinks = [](std::int64_t from, std::int64_t to) {
    return to > 0 && (from <= 0 || to < from);
  };
  const auto ms = [](std::int64_t nanos) { return std::to_string(nanos / kNanosPerMilli) + "ms"; };
  const std::int64_t max_age = stream.max_age.count() * kNanosPerMilli;
  const std::int64_t duplicates = stream.duplicate_window.count() * kNanosPerMilli;
  if (running.MaxAge != max_age) {
    out.push_back(
        {"STREAM_MAX_AGE", ms(running.MaxAge), ms(max_age), shrinks(running.MaxAge, max_age)});
  }
  if (!stream.max_bytes_auto && running.MaxBytes != stream.max_bytes) {
    out.push_back({"STREAM_MAX_BYTES", std::to_string(running.MaxBytes),
                   std::to_string(stream.max_bytes), shrinks(running.MaxBytes, stream.max_bytes)});
  }
  if (running.Duplicates != duplicates) {
    out.push_back({"STREAM_DUPLICATE_WINDOW", ms(running.Duplicates), ms(duplicates), false});
  }
  if (running.Replicas != stream.replicas) {
    out.push_back({"STREAM_REPLICAS", std::to_string(running.Replicas),
                   std::to_string(stream.replicas), false});
  }
  const std::string subject = stream.wildcard();
  const bool same_subject = running.SubjectsLen == 1 && running.Subjects != nullptr &&
                            running.Subjects[0] != nullptr && subject == running.Subjects[0];
  if (!same_subject) {
    std::string subjects;
    for (int i = 0; i < running.SubjectsLen && running.Subjects != nullptr; ++i) {
      subjects += (i == 0 ? "" : ",") + std::string(running.Subjects[i]);
    }
    out.push_back({"STREAM_SUBJECT_PREFIX", subjects, subject, true});
  }
  if (running.Discard != js_DiscardNew) {
    out.push_back({"discard policy", "old", "new", false});
  }
  return out;
}

namespace {

std::string describe(const std::vector<ConfigDifference>& differences) {
  std::string text;
  for (const auto& d : differences) {
    if (!text.empty()) text += "; ";
    text += d.setting + " running=" + d.running + " this_process=" + d.wanted;
  }
  return text;
}

}  // namespace

std::optional<StreamIdentity> stream_identity(jsCtx* js, const std::string& stream,
                                              std::chrono::milliseconds wait) {
  jsOptions opts;
  jsOptions_Init(&opts);
  opts.Wait = wait.count();
  jsStreamInfo* si = nullptr;
  if (js_GetStreamInfo(&si, js, stream.c_str(), wait.count() > 0 ? &opts : nullptr, nullptr) !=
      NATS_OK) {
    return std::nullopt;
  }
  StreamInfoPtr info(si);
  return StreamIdentity{info->Created, info->State.FirstSeq, info->State.LastSeq};
}

std::vector<ConfigDifference> ensure_stream(jsCtx* js, const StreamSettings& stream) {
  const std::string subject = stream.wildcard();
  const char* subjects[] = {subject.c_str()};
  jsStreamConfig cfg;
  fill_stream_config(&cfg, stream, subjects);
  jsStreamInfo* si = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_GetStreamInfo(&si, js, stream.name.c_str(), nullptr, &code);
  StreamInfoPtr running(si);
  if (status == NATS_NOT_FOUND) {
    si = nullptr;
    code = static_cast<jsErrCode>(0);
    status = js_AddStream(&si, js, &cfg, nullptr, &code);
    // STREAM_MAX_BYTES=auto: as much of the default as the broker can
    // reserve (its max_file_store may be smaller than the default).
    constexpr std::int64_t kSmallestAuto = std::int64_t{1} << 20;
    while (status != NATS_OK && stream.max_bytes_auto && cfg.MaxBytes / 2 >= kSmallestAuto &&
           (code == JSStorageResourcesExceededErr || code == JSInsufficientResourcesErr)) {
      cfg.MaxBytes /= 2;
      log::info("stream_max_bytes_reduced", {{"stream", stream.name},
                                             {"max_bytes", cfg.MaxBytes},
                                             {"reason", "the broker cannot reserve more"}});
      si = nullptr;
      code = static_cast<jsErrCode>(0);
      status = js_AddStream(&si, js, &cfg, nullptr, &code);
    }
    StreamInfoPtr holder(si);
    // Another process may have created it between our look and our add.
    if (status != NATS_OK && stream_exists(js, stream.name)) return ensure_stream(js, stream);
    check(status, ("create stream " + stream.name).c_str(), code);
    log::info("stream_created", {{"stream", stream.name},
                                 {"subjects", subject},
                                 {"duplicate_window_ms", stream.duplicate_window.count()},
                                 {"max_age_ms", stream.max_age.count()},
                                 {"max_bytes", cfg.MaxBytes},
                                 {"replicas", stream.replicas}});
    return {};
  }
  check(status, ("look up stream " + stream.name).c_str(), code);
  std::vector<ConfigDifference> differences = stream_differences(*running->Config, stream);
  if (differences.empty()) return differences;
  const bool deletes = std::any_of(differences.begin(), differences.end(),
                                   [](const ConfigDifference& d) { return d.can_delete_events; });
  if (stream.update == ConfigUpdate::kKeep) {
    log::warn("stream_settings_differ",
              {{"stream", stream.name},
               {"action",
                "kept the running configuration (STREAM_UPDATE=apply applies this "
                "process's settings)"},
               {"differences", describe(differences)}});
    return differences;
  }
  si = nullptr;
  code = static_cast<jsErrCode>(0);
  status = js_UpdateStream(&si, js, &cfg, nullptr, &code);
  StreamInfoPtr holder(si);
  check(status, ("update stream " + stream.name).c_str(), code);
  if (deletes) {
    log::warn("stream_updated", {{"stream", stream.name},
                                 {"setting", "STREAM_UPDATE=apply"},
                                 {"deletes_stored_events", "possible"},
                                 {"differences", describe(differences)}});
  } else {
    log::info("stream_updated", {{"stream", stream.name},
                                 {"setting", "STREAM_UPDATE=apply"},
                                 {"differences", describe(differences)}});
  }
  return differences;
}

ConsumerSettings ensure_consumer(jsCtx* js, const StreamSettings& stream,
                                 const ConsumerSettings& consumer) {
  const std::string filter = stream.wildcard();
  jsConsumerConfig cfg;
  jsConsumerConfig_Init(&cfg);
  cfg.Durable = consumer.durable.c_str();
  cfg.AckPolicy = js_AckExplicit;
  cfg.AckWait = consumer.ack_wait.count() * kNanosPerMilli;
  cfg.DeliverPolicy = js_DeliverAll;
  cfg.FilterSubject = filter.c_str();
  cfg.MaxAckPending = consumer.max_ack_pending;
  cfg.MaxDeliver = -1;  // never give up on an accepted event
  cfg.MaxWaiting = 512;

  jsConsumerInfo* ci = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status =
      js_GetConsumerInfo(&ci, js, stream.name.c_str(), consumer.durable.c_str(), nullptr, &code);
  ConsumerInfoPtr existing(ci);
  ci = nullptr;
  if (status == NATS_NOT_FOUND) {
    code = static_cast<jsErrCode>(0);
    status = js_AddConsumer(&ci, js, stream.name.c_str(), &cfg, nullptr, &code);
    ConsumerInfoPtr holder(ci);
    if (status != NATS_OK) {
      // Lost a race with another process creating the same durable: take it.
      jsConsumerInfo* raw = nullptr;
      if (js_GetConsumerInfo(&raw, js, stream.name.c_str(), consumer.durable.c_str(), nullptr,
                             nullptr) == NATS_OK) {
        jsConsumerInfo_Destroy(raw);
        return ensure_consumer(js, stream, consumer);
      }
    }
    check(status, ("create consumer " + consumer.durable).c_str(), code);
    log::info("consumer_created", {{"stream", stream.name},
                                   {"consumer", consumer.durable},
                                   {"ack_wait_ms", consumer.ack_wait.count()},
                                   {"max_ack_pending", consumer.max_ack_pending}});
    return consumer;
  }
  check(status, "js_GetConsumerInfo", code);
  ConsumerSettings running = consumer;
  running.ack_wait = std::chrono::milliseconds(existing->Config->AckWait / kNanosPerMilli);
  running.max_ack_pending = existing->Config->MaxAckPending;
  std::vector<ConfigDifference> differences;
  if (running.ack_wait != consumer.ack_wait) {
    differences.push_back({"CONSUMER_ACK_WAIT", std::to_string(running.ack_wait.count()) + "ms",
                           std::to_string(consumer.ack_wait.count()) + "ms", false});
  }
  if (running.max_ack_pending != consumer.max_ack_pending) {
    differences.push_back({"CONSUMER_MAX_ACK_PENDING", std::to_string(running.max_ack_pending),
                           std::to_string(consumer.max_ack_pending), false});
  }
  if (differences.empty()) return running;
  if (stream.update == ConfigUpdate::kKeep) {
    log::warn("consumer_settings_differ",
              {{"consumer", consumer.durable},
               {"action",
                "kept the running configuration (STREAM_UPDATE=apply applies this "
                "process's settings)"},
               {"differences", describe(differences)}});
    return running;
  }
  code = static_cast<jsErrCode>(0);
  status = js_UpdateConsumer(&ci, js, stream.name.c_str(), &cfg, nullptr, &code);
  ConsumerInfoPtr holder(ci);
  check(status, ("update consumer " + consumer.durable).c_str(), code);
  log::info("consumer_updated", {{"consumer", consumer.durable},
                                 {"setting", "STREAM_UPDATE=apply"},
                                 {"differences", describe(differences)}});
  return consumer;
}

void create_if_missing(jsCtx* js, const StreamSettings& stream, const ConsumerSettings& consumer) {
  if (!stream_exists(js, stream.name)) ensure_stream(js, stream);
  jsConsumerInfo* ci = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status =
      js_GetConsumerInfo(&ci, js, stream.name.c_str(), consumer.durable.c_str(), nullptr, &code);
  ConsumerInfoPtr holder(ci);
  if (status == NATS_NOT_FOUND) {
    ensure_consumer(js, stream, consumer);
    return;
  }
  check(status, "js_GetConsumerInfo", code);
}

void retry_setup(const char* what, std::chrono::milliseconds timeout,
                 const std::function<void()>& setup) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int attempt = 1;; ++attempt) {
    try {
      setup();
      return;
    } catch (const NatsError& e) {
      if (std::chrono::steady_clock::now() >= deadline) throw;
      log::warn("jetstream_setup_retry",
                {{"what", what}, {"attempt", attempt}, {"error", log::first_line(e.what())}});
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

std::optional<ConsumerBacklog> consumer_backlog(jsCtx* js, const std::string& stream,
                                                const std::string& durable) {
  jsConsumerInfo* ci = nullptr;
  if (js_GetConsumerInfo(&ci, js, stream.c_str(), durable.c_str(), nullptr, nullptr) != NATS_OK) {
    return std::nullopt;
  }
  ConsumerInfoPtr info(ci);
  return ConsumerBacklog{info->NumPending, static_cast<std::uint64_t>(info->NumAckPending)};
}

std::optional<AckFloor> ack_floor(jsCtx* js, const std::string& stream,
                                  const std::string& durable) {
  jsConsumerInfo* ci = nullptr;
  if (js_GetConsumerInfo(&ci, js, stream.c_str(), durable.c_str(), nullptr, nullptr) != NATS_OK) {
    return std::nullopt;
  }
  ConsumerInfoPtr info(ci);
  return AckFloor{info->AckFloor.Stream, info->Created};
}

}  // namespace pipeline::nats
