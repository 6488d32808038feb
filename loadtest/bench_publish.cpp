// bench_publish: the JetStream publish ceiling. Publishes the workload's
// events (the bytes ingest would publish, duplicates included) with
// js_PublishMsgAsync and a Nats-Msg-Id each, as ingest does, into a scratch
// stream configured like EVENTS, and times it until the last PubAck.
#include <atomic>
#include <iostream>

#include "bench_common.hpp"
#include "pipeline/jetstream.hpp"

namespace {

using namespace loadtest::bench;
namespace pn = pipeline::nats;

struct AckCounts {
  std::atomic<std::uint64_t> stored{0};
  std::atomic<std::uint64_t> duplicate{0};
  std::atomic<std::uint64_t> error{0};
};

void on_ack(jsCtx* /*js*/, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* counts = static_cast<AckCounts*>(closure);
  if (pa != nullptr) {
    (pa->Duplicate ? counts->duplicate : counts->stored)++;
  } else if (pae != nullptr) {
    counts->error++;
  }
  natsMsg_Destroy(msg);
}

int run(int argc, char** argv) {
  loadtest::Flags flags("bench_publish", "JetStream async publish with message ids, alone.");
  flags.add("nats-url", "nats://127.0.0.1:4222", "the stack's nats-server");
  add_workload_flags(flags);
  if (!flags.parse(argc, argv)) return 0;
  const auto workload = workload_from_flags(flags);

  const auto events = normalized_events(workload, nullptr);
  pn::StreamSettings stream;
  stream.name = scratch_name("LOADTEST_PUBLISH");
  stream.subject_prefix = scratch_name("loadtest_publish");
  stream.max_age = std::chrono::hours(1);
  struct Prepared {
    std::string subject, id, data;
  };
  std::vector<Prepared> messages;
  messages.reserve(events.size());
  for (const auto& e : events) {
    messages.push_back({stream.subject_for(e.topic), e.message_id(), pipeline::encode_event(e)});
  }

  auto conn = pn::connect(flags.str("nats-url"), "bench_publish", std::chrono::seconds(10));
  AckCounts counts;
  jsOptions opts;
  jsOptions_Init(&opts);
  opts.Wait = 10000;
  opts.PublishAsync.AckHandler = on_ack;
  opts.PublishAsync.AckHandlerClosure = &counts;
  opts.PublishAsync.MaxPending = std::int64_t{256} * 1024;  // as ingest
  opts.PublishAsync.StallWait = 10000;
  auto js = pn::jetstream(conn.get(), &opts);
  pn::ensure_stream(js.get(), stream);

  std::uint64_t publish_errors = 0;
  const auto start = Clock::now();
  for (const auto& m : messages) {
    natsMsg* msg = nullptr;
    natsStatus s = natsMsg_Create(&msg, m.subject.c_str(), nullptr, m.data.data(),
                                  static_cast<int>(m.data.size()));
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Nats-Msg-Id", m.id.c_str());
    if (s == NATS_OK) s = js_PublishMsgAsync(js.get(), &msg, nullptr);
    if (s != NATS_OK) {
      ++publish_errors;
      natsMsg_Destroy(msg);
    }
  }
  jsPubOptions wait;
  jsPubOptions_Init(&wait);
  wait.MaxWait = 60000;
  const natsStatus complete = js_PublishAsyncComplete(js.get(), &wait);
  const double seconds = seconds_since(start);

  jsErrCode code = static_cast<jsErrCode>(0);
  js_DeleteStream(js.get(), stream.name.c_str(), nullptr, &code);
  if (complete != NATS_OK || publish_errors + counts.error > 0) {
    std::cerr << "bench_publish: " << publish_errors << " publish errors, " << counts.error
              << " PubAck errors, completion " << natsStatus_GetText(complete) << "\n";
    return 1;
  }
  std::size_t bytes = 0;
  for (const auto& m : messages) bytes += m.data.size();
  report("publish",
         {{"messages", messages.size()},
          {"stored", counts.stored.load()},
          {"duplicates", counts.duplicate.load()},
          {"mean_message_bytes", static_cast<double>(bytes) / static_cast<double>(messages.size())},
          {"messages_per_second", static_cast<double>(messages.size()) / seconds}},
         workload.events, seconds, flags.str("json"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return guarded_main("bench_publish", [&] { return run(argc, argv); });
}
