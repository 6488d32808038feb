#include "workload_flags.hpp"

#include <cstdint>

namespace loadtest {

void add_workload_flags(Flags& flags, const std::string& default_events) {
  flags.add("events", default_events, "events to publish, duplicates included");
  flags.add("batch", "100", "events per request (1 = one event per request)");
  flags.add("duplicates", "0.3", "share of events that repeat an earlier (topic, event_id)");
  flags.add("within-request", "0.5",
            "share of the duplicates that repeat an event of the same request");
  flags.add("topics", "10", "number of topics");
  flags.add("topic-prefix", "loadtest.t",
            "topics are this followed by a number below --topics (bench.sub. gives bench.sub.0, "
            "bench.sub.1, ...)");
  flags.add("payload-bytes", "200", "size of each event's payload object");
  flags.add("seed", "42", "seed of the plan (which events repeat which)");
  flags.add("json", "", "also write the results as JSON to this file");
}

WorkloadConfig workload_from_flags(const Flags& flags) {
  WorkloadConfig w;
  w.events = static_cast<std::uint64_t>(flags.integer("events", 0, 1'000'000'000'000));
  w.batch = static_cast<std::size_t>(flags.integer("batch", 1, 100000));
  w.duplicate_ratio = flags.number("duplicates", 0, 0.99);
  w.within_request_share = flags.number("within-request", 0, 1);
  w.topics = static_cast<std::size_t>(flags.integer("topics", 1, 100000));
  w.topic_prefix = flags.str("topic-prefix");
  w.payload_bytes = static_cast<std::size_t>(flags.integer("payload-bytes", 0, 1 << 20));
  w.seed = static_cast<std::uint64_t>(flags.integer("seed", 0, INT64_MAX));
  return w;
}

}  // namespace loadtest
