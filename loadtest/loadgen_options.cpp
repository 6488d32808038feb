#include "loadgen_options.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "flags.hpp"
#include "http.hpp"
#include "workload_flags.hpp"

namespace loadgen {
namespace {

// The default run id, new for each run: "r" and 8 hex digits from the clock
// and the pid.
std::string new_run_id() {
  const auto now = std::chrono::system_clock::now().time_since_epoch().count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "r%08llx",
                static_cast<unsigned long long>(now ^ (static_cast<long long>(::getpid()) << 20)) &
                    0xffffffffULL);
  return buf;
}

}  // namespace

std::optional<Options> read_options(int argc, const char* const* argv) {
  loadtest::Flags flags("loadgen",
                        "Publishes events to ingest's POST /publish and checks that the pipeline "
                        "stored them exactly once (GET /stats).");
  flags.add("url", "http://127.0.0.1:8080", "ingest's base URL (loopback only)");
  loadtest::add_workload_flags(flags, "20000");
  flags.add("duration", "0s",
            "stop publishing after this long (0 = when --events are sent; with --events=0, no "
            "event limit)");
  flags.add("connections", "8", "concurrent connections (kept alive, as HTTP/1.1 does by default)");
  flags.add("keep-alive-header", "false",
            "send \"Connection: keep-alive\" with every request (standard clients do not; "
            "to compare)");
  flags.add("body", "json",
            "request body format: json (a JSON array of the batch) or ndjson (one event per line, "
            "application/x-ndjson) to POST /publish; or a shipper protocol: otlp (OTLP/HTTP "
            "protobuf to /v1/logs), otlp-json, bulk (Elasticsearch bulk NDJSON to /_bulk), loki "
            "(snappy protobuf to /loki/api/v1/push)");
  flags.add("gzip", "false", "compress each body with gzip (Content-Encoding: gzip)");
  flags.add("rate", "0", "target events per second over all connections (0 = unbounded)");
  flags.add("run-id", "", "prefix of every event_id (default: new for each run)");
  flags.add("token", "", "bearer token for ingest's API (INGEST_API_TOKENS)");
  flags.add("max-retries", "20",
            "retries of a request without answer, or 503/429, before giving up");
  flags.add("request-timeout", "30s", "time to wait for one response");
  flags.add("timeout", "120s", "time to wait for the pipeline to store everything");
  flags.add("sample-interval", "1s", "how often to sample GET /stats while publishing (0 = never)");
  flags.add("no-verify", "false", "skip waiting for the pipeline and checking /stats");
  flags.add("quiet", "false", "no progress lines");
  flags.add("get", "",
            "instead of publishing, GET this path (e.g. /health) for --duration: the HTTP "
            "server's own ceiling, without NATS or PostgreSQL");
  if (!flags.parse(argc, argv)) return std::nullopt;

  Options o;
  o.url = flags.str("url");
  o.port = loadtest::loopback_port(o.url);
  if (!flags.str("token").empty()) o.authorization = "Bearer " + flags.str("token");
  o.keep_alive_header = flags.boolean("keep-alive-header");
  const std::string body = flags.str("body");
  const auto format = loadtest::body_format_named(body);
  if (!format)
    throw std::invalid_argument("--body must be json, ndjson, otlp, otlp-json, bulk or loki");
  o.coding.format = *format;
  o.coding.gzip = flags.boolean("gzip");
  o.workload = loadtest::workload_from_flags(flags);
  auto& w = o.workload;
  w.run_id = flags.str("run-id");
  if (w.run_id.empty()) w.run_id = new_run_id();
  o.connections = static_cast<std::size_t>(flags.integer("connections", 1, 4096));
  o.rate = flags.number("rate", 0, 1e9);
  o.duration = flags.duration("duration");
  o.drain_timeout = flags.duration("timeout");
  o.request_timeout = flags.duration("request-timeout");
  o.sample_interval = flags.duration("sample-interval");
  o.max_retries = static_cast<int>(flags.integer("max-retries", 0, 1000));
  o.verify = !flags.boolean("no-verify");
  o.quiet = flags.boolean("quiet");
  o.json_path = flags.str("json");
  o.get_path = flags.str("get");
  if (!o.get_path.empty()) {
    if (o.get_path[0] != '/') throw std::invalid_argument("--get must be a path like /health");
    if (o.duration.count() == 0) throw std::invalid_argument("--get needs a --duration");
    o.verify = false;
  }
  if (w.events == 0 && o.duration.count() == 0) {
    throw std::invalid_argument("--events=0 needs a --duration");
  }
  return o;
}

}  // namespace loadgen
