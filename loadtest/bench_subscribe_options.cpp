#include "bench_subscribe_options.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "flags.hpp"
#include "http.hpp"

namespace bench_subscribe {
namespace {

// Per-(subscriber, event) arrival slots held at once: 8 bytes each.
constexpr double kMaxSlots = 25e6;

std::string new_run_id() {
  const auto now = std::chrono::system_clock::now().time_since_epoch().count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "s%08llx",
                static_cast<unsigned long long>(now ^ (static_cast<long long>(::getpid()) << 20)) &
                    0xffffffffULL);
  return buf;
}

std::vector<std::string> tokens(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = text.find('.', start);
    out.push_back(text.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) return out;
    start = dot + 1;
  }
}

void declare(loadtest::Flags& flags) {
  flags.add("url", "http://127.0.0.1:8080", "ingest's base URL (loopback only)");
  flags.add("token", "", "bearer token for ingest's API (INGEST_API_TOKENS)");
  flags.add("subscribers", "100", "GET /subscribe streams that read everything");
  flags.add("stalled", "0", "more streams that never read after their response head");
  flags.add("stalled-rcvbuf", "4096", "SO_RCVBUF of the stalled streams' sockets (bytes)");
  flags.add("topic-prefix", "bench.lat.", "topics are this and a number below --topics");
  flags.add("topics", "10", "topics the events are spread over (key mod topics)");
  flags.add("subscription", "all",
            "all: every stream asks for <prefix>* (each gets every event); own: stream i asks "
            "for <prefix><i mod topics>");
  flags.add("hold", "false",
            "publish nothing: open the streams, read until SIGTERM/SIGINT or --duration, then "
            "check what each got against GET /stats (others publish meanwhile)");
  flags.add("rate", "1000", "events per second, one event per POST /publish");
  flags.add("duration", "10s", "how long to publish (with --hold: to hold at most)");
  flags.add("connections", "8", "publishing connections");
  flags.add("payload-bytes", "200", "size of each event's payload object");
  flags.add("open-timeout", "60s", "time to open every stream");
  flags.add("drain-timeout", "30s", "time to wait for the last deliveries after publishing");
  flags.add("request-timeout", "10s", "time to wait for one publish answer");
  flags.add("run-id", "", "prefix of every event_id (default: new for each run)");
  flags.add("json", "", "also write the results as JSON to this file");
  flags.add("ready-file", "", "write this file once every stream is open (for scripts)");
  flags.add("watch-pid", "0",
            "record this process's RSS (ingest's): before the streams open, once they are "
            "open, and after the deliveries");
  flags.add("quiet", "false", "no progress lines");
}

void check(const Options& o) {
  if (o.assignment == Assignment::kAll &&
      (o.topic_prefix.empty() || o.topic_prefix.back() != '.')) {
    throw std::invalid_argument("--subscription=all needs a --topic-prefix ending in '.'");
  }
  if (o.hold) return;
  const double events = static_cast<double>(o.max_events());
  if (events < 1) throw std::invalid_argument("--rate x --duration is less than one event");
  if (events > 10e6) throw std::invalid_argument("--rate x --duration over 10,000,000 events");
  const double per_subscriber =
      o.assignment == Assignment::kAll ? events : std::ceil(events / static_cast<double>(o.topics));
  if (per_subscriber * static_cast<double>(o.subscribers) > kMaxSlots) {
    throw std::invalid_argument(
        "subscribers x events each would get is over 25,000,000 arrivals to record: lower "
        "--subscribers, --rate or --duration");
  }
}

}  // namespace

std::uint64_t Options::max_events() const {
  return static_cast<std::uint64_t>(
      std::floor(rate * static_cast<double>(duration.count()) / 1000));
}

std::string Options::pattern(std::size_t i) const {
  if (assignment == Assignment::kAll) return topic_prefix + "*";
  return topic_prefix + std::to_string(i % topics);
}

bool topic_matches(const std::string& pattern, const std::string& topic) {
  const std::size_t wild = pattern.find_first_of("*>");
  if (wild == std::string::npos) return pattern == topic;
  if (wild + 1 == pattern.size() && pattern[wild] == '*' &&
      (wild == 0 || pattern[wild - 1] == '.')) {
    // "<prefix>*", the bench's own shape, without allocating: one more token.
    return topic.size() > wild && topic.compare(0, wild, pattern, 0, wild) == 0 &&
           topic.find('.', wild) == std::string::npos;
  }
  const auto want = tokens(pattern);
  const auto got = tokens(topic);
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (want[i] == ">") return got.size() > i;
    if (i >= got.size() || (want[i] != "*" && want[i] != got[i])) return false;
  }
  return want.size() == got.size();
}

std::optional<Options> read_options(int argc, const char* const* argv) {
  loadtest::Flags flags("bench_subscribe",
                        "Measures GET /subscribe: opens Server-Sent Events streams, publishes "
                        "single events at a fixed rate, and reports the delay from each "
                        "publish's 200 to the event's arrival at each stream, and whether each "
                        "stream got exactly its events, once and in order.");
  declare(flags);
  if (!flags.parse(argc, argv)) return std::nullopt;
  Options o;
  o.url = flags.str("url");
  o.port = loadtest::loopback_port(o.url);
  if (!flags.str("token").empty()) o.authorization = "Bearer " + flags.str("token");
  o.subscribers = static_cast<std::size_t>(flags.integer("subscribers", 1, 20000));
  o.stalled = static_cast<std::size_t>(flags.integer("stalled", 0, 1000));
  o.stalled_rcvbuf = static_cast<int>(flags.integer("stalled-rcvbuf", 256, 1 << 24));
  o.topic_prefix = flags.str("topic-prefix");
  o.topics = static_cast<std::size_t>(flags.integer("topics", 1, 100000));
  const std::string assignment = flags.str("subscription");
  if (assignment != "all" && assignment != "own") {
    throw std::invalid_argument("--subscription must be all or own");
  }
  o.assignment = assignment == "all" ? Assignment::kAll : Assignment::kOwn;
  o.hold = flags.boolean("hold");
  o.rate = flags.number("rate", 0.1, 100000);
  o.duration = flags.duration("duration");
  if (o.duration.count() <= 0 || o.duration > std::chrono::hours(2)) {
    throw std::invalid_argument("--duration must be more than 0 and at most 2h");
  }
  o.connections = static_cast<std::size_t>(flags.integer("connections", 1, 256));
  o.payload_bytes = static_cast<std::size_t>(flags.integer("payload-bytes", 0, 65000));
  o.open_timeout = flags.duration("open-timeout");
  o.drain_timeout = flags.duration("drain-timeout");
  o.request_timeout = flags.duration("request-timeout");
  o.run_id = flags.str("run-id").empty() ? new_run_id() : flags.str("run-id");
  o.json_path = flags.str("json");
  o.ready_file = flags.str("ready-file");
  o.watch_pid = static_cast<int>(flags.integer("watch-pid", 0, 1 << 22));
  o.quiet = flags.boolean("quiet");
  check(o);
  return o;
}

}  // namespace bench_subscribe
