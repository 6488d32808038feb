// bench_consume: the pull-consumer ceiling. Fills a scratch stream with the
// workload's unique events (the messages the processor would see once the
// broker dropped the duplicates), then times worker threads that Fetch and
// ack them, as the processor's workers do, with nothing in between, until
// the broker holds every ack.
#include <algorithm>
#include <atomic>
#include <iostream>
#include <thread>

#include "bench_common.hpp"
#include "pipeline/jetstream.hpp"

namespace {

using namespace loadtest::bench;
namespace pn = pipeline::nats;

void fill(jsCtx* js, const pn::StreamSettings& stream, const std::vector<pipeline::Event>& events,
          const std::vector<bool>& duplicate) {
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (duplicate[i]) continue;
    const std::string subject = stream.subject_for(events[i].topic);
    const std::string data = pipeline::encode_event(events[i]);
    pn::check(
        js_PublishAsync(js, subject.c_str(), data.data(), static_cast<int>(data.size()), nullptr),
        "js_PublishAsync");
  }
  jsPubOptions wait;
  jsPubOptions_Init(&wait);
  wait.MaxWait = 60000;
  pn::check(js_PublishAsyncComplete(js, &wait), "js_PublishAsyncComplete");
}

// One pull subscription per worker, all on the durable consumer.
std::vector<pn::SubscriptionPtr> pull_subscribe(jsCtx* js, const pn::StreamSettings& stream,
                                                const pn::ConsumerSettings& consumer,
                                                std::size_t workers) {
  std::vector<pn::SubscriptionPtr> subs;
  for (std::size_t w = 0; w < workers; ++w) {
    natsSubscription* raw = nullptr;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream.name.c_str();
    so.Consumer = consumer.durable.c_str();
    jsErrCode code = static_cast<jsErrCode>(0);
    pn::check(js_PullSubscribe(&raw, js, stream.wildcard().c_str(), consumer.durable.c_str(),
                               nullptr, &so, &code),
              "js_PullSubscribe", code);
    subs.emplace_back(raw);
  }
  return subs;
}

struct FetchCounts {
  std::uint64_t fetched = 0;
  std::uint64_t fetches = 0;
  bool failed = false;  // a Fetch failed other than by timing out
};

// The timed part: a thread per subscription fetches and acks until `unique`
// messages came (or the deadline passed).
FetchCounts fetch_and_ack(const std::vector<pn::SubscriptionPtr>& subs, std::uint64_t unique,
                          int fetch_batch, Clock::time_point deadline) {
  std::atomic<std::uint64_t> fetched{0};
  std::atomic<std::uint64_t> fetches{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  threads.reserve(subs.size());
  for (const auto& sub : subs) {
    threads.emplace_back([&, sub = sub.get()] {
      while (fetched.load() < unique && Clock::now() < deadline) {
        natsMsgList list{};
        jsErrCode code = static_cast<jsErrCode>(0);
        const natsStatus s = natsSubscription_Fetch(&list, sub, fetch_batch, 200, &code);
        if (s == NATS_OK) {
          for (int i = 0; i < list.Count; ++i) natsMsg_Ack(list.Msgs[i], nullptr);
          fetched += static_cast<std::uint64_t>(list.Count);
          ++fetches;
        } else if (s != NATS_TIMEOUT) {
          failed = true;
        }
        natsMsgList_Destroy(&list);
      }
    });
  }
  for (auto& t : threads) t.join();
  return {fetched.load(), fetches.load(), failed.load()};
}

// Done when the broker has every ack, not when the last one left.
void wait_for_acks(natsConnection* conn, jsCtx* js, const pn::StreamSettings& stream,
                   const pn::ConsumerSettings& consumer, Clock::time_point deadline) {
  natsConnection_FlushTimeout(conn, 10000);
  while (Clock::now() < deadline) {
    const auto backlog = pn::consumer_backlog(js, stream.name, consumer.durable);
    if (backlog && backlog->pending == 0 && backlog->ack_pending == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

int run(int argc, char** argv) {
  loadtest::Flags flags("bench_consume", "JetStream pull-consumer Fetch + ack, alone.");
  flags.add("nats-url", "nats://127.0.0.1:4222", "the stack's nats-server");
  flags.add("workers", "2", "fetching threads (the processor's PROCESSOR_WORKERS)");
  flags.add("fetch-batch", "100", "messages per Fetch");
  add_workload_flags(flags);
  if (!flags.parse(argc, argv)) return 0;
  const auto workload = workload_from_flags(flags);
  const auto workers = static_cast<std::size_t>(flags.integer("workers", 1, 64));
  const int fetch_batch = static_cast<int>(flags.integer("fetch-batch", 1, 10000));

  std::vector<bool> duplicate;
  const auto events = normalized_events(workload, &duplicate);
  pn::StreamSettings stream;
  stream.name = scratch_name("LOADTEST_CONSUME");
  stream.subject_prefix = scratch_name("loadtest_consume");
  stream.max_age = std::chrono::hours(1);
  pn::ConsumerSettings consumer;  // the processor's defaults
  consumer.durable = "bench";

  auto conn = pn::connect(flags.str("nats-url"), "bench_consume", std::chrono::seconds(10));
  auto js = pn::jetstream(conn.get());
  pn::ensure_stream(js.get(), stream);
  fill(js.get(), stream, events, duplicate);
  pn::ensure_consumer(js.get(), stream, consumer);
  const auto unique =
      static_cast<std::uint64_t>(std::count(duplicate.begin(), duplicate.end(), false));

  const auto deadline = Clock::now() + std::chrono::minutes(5);
  auto subs = pull_subscribe(js.get(), stream, consumer, workers);
  const auto start = Clock::now();
  const FetchCounts counts = fetch_and_ack(subs, unique, fetch_batch, deadline);
  wait_for_acks(conn.get(), js.get(), stream, consumer, deadline);
  const double seconds = seconds_since(start);

  subs.clear();
  jsErrCode code = static_cast<jsErrCode>(0);
  js_DeleteStream(js.get(), stream.name.c_str(), nullptr, &code);
  if (counts.fetched != unique || counts.failed) {
    std::cerr << "bench_consume: fetched " << counts.fetched << " of " << unique
              << (counts.failed ? " (a Fetch failed)" : "") << "\n";
    return 1;
  }
  report("consume",
         {{"messages", unique},
          {"fetches", counts.fetches},
          {"workers", workers},
          {"fetch_batch", fetch_batch},
          {"messages_per_second", static_cast<double>(unique) / seconds}},
         workload.events, seconds, flags.str("json"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return guarded_main("bench_consume", [&] { return run(argc, argv); });
}
