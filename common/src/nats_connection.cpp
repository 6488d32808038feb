// Connecting to NATS: options (reconnects, pings, a write deadline), the
// first connect retried until CONNECT_TIMEOUT, one log line per outage.
#include <thread>
#include <vector>

#include "pipeline/jetstream.hpp"
#include "pipeline/logging.hpp"
#include "pipeline/settings.hpp"

namespace pipeline::nats {
namespace {

// A URL as it may be logged: "nats://user:secret@host:4222" becomes
// "nats://***@host:4222", for each URL of a comma-separated list.
std::string redact_url(const std::string& urls) {
  std::string out;
  for (const auto& url : pipeline::split_list(urls)) {
    if (!out.empty()) out += ',';
    const auto scheme = url.find("://");
    const auto start = scheme == std::string::npos ? 0 : scheme + 3;
    const auto at = url.find('@', start);
    out += at == std::string::npos ? url : url.substr(0, start) + "***" + url.substr(at);
  }
  return out;
}

void on_disconnected(natsConnection* conn, void* /*closure*/) {
  if (natsConnection_IsClosed(conn)) return;  // our own close, not an outage
  log::warn("nats_disconnected", {{"reconnecting", true}});
}

void on_reconnected(natsConnection* conn, void* /*closure*/) {
  char url[256] = "";
  natsConnection_GetConnectedUrl(conn, url, sizeof url);
  log::info("nats_reconnected", {{"server", redact_url(url)}});
}

}  // namespace

ConnectionPtr connect(const std::string& url, const std::string& client_name,
                      std::chrono::milliseconds connect_timeout, bool send_asap,
                      std::chrono::milliseconds ping_interval) {
  // No spinning on nats.c's locks before blocking: on a machine with few
  // cores the spinning thread takes the CPU from the one holding the lock
  // (measured: -25% client CPU per publish, +30% publishes/s; BENCHMARKS.md).
  // Only the first call of the process counts, so it comes before any other
  // nats.c call.
  static const natsStatus opened = nats_Open(0);
  check(opened, "nats_Open");
  natsOptions* raw_opts = nullptr;
  check(natsOptions_Create(&raw_opts), "natsOptions_Create");
  OptionsPtr opts(raw_opts);
  // natsOptions_SetURL takes one URL; a comma-separated list (a cluster)
  // goes through natsOptions_SetServers.
  const std::vector<std::string> servers = pipeline::split_list(url);
  std::vector<const char*> server_ptrs;
  server_ptrs.reserve(servers.size());
  for (const auto& server : servers) server_ptrs.push_back(server.c_str());
  check(
      natsOptions_SetServers(opts.get(), server_ptrs.data(), static_cast<int>(server_ptrs.size())),
      "natsOptions_SetServers");
  check(natsOptions_SetName(opts.get(), client_name.c_str()), "natsOptions_SetName");
  check(natsOptions_SetMaxReconnect(opts.get(), -1), "natsOptions_SetMaxReconnect");
  check(natsOptions_SetReconnectWait(opts.get(), 250), "natsOptions_SetReconnectWait");
  check(natsOptions_SetReconnectBufSize(opts.get(), 64 * 1024 * 1024),
        "natsOptions_SetReconnectBufSize");
  check(natsOptions_SetSendAsap(opts.get(), send_asap), "natsOptions_SetSendAsap");
  check(natsOptions_SetPingInterval(opts.get(), ping_interval.count()),
        "natsOptions_SetPingInterval");
  check(natsOptions_SetMaxPingsOut(opts.get(), 3), "natsOptions_SetMaxPingsOut");
  // A broker that takes no bytes (its socket buffer full, a partition) for
  // two ping intervals ends the connection rather than blocking whichever
  // thread writes to it, however long the kernel keeps the socket.
  check(natsOptions_SetWriteDeadline(opts.get(), 2 * ping_interval.count()),
        "natsOptions_SetWriteDeadline");
  // One log line per connection change; the nats_up gauges carry it to metrics.
  check(natsOptions_SetDisconnectedCB(opts.get(), on_disconnected, nullptr),
        "natsOptions_SetDisconnectedCB");
  check(natsOptions_SetReconnectedCB(opts.get(), on_reconnected, nullptr),
        "natsOptions_SetReconnectedCB");

  const auto deadline = std::chrono::steady_clock::now() + connect_timeout;
  for (int attempt = 1;; ++attempt) {
    natsConnection* conn = nullptr;
    const natsStatus status = natsConnection_Connect(&conn, opts.get());
    if (status == NATS_OK) return ConnectionPtr(conn);
    if (std::chrono::steady_clock::now() >= deadline) {
      check(status, ("connect to NATS at " + redact_url(url)).c_str());
    }
    if (attempt == 1 || attempt % 20 == 0) {
      log::warn(
          "nats_connect_retry",
          {{"url", redact_url(url)}, {"attempt", attempt}, {"status", natsStatus_GetText(status)}});
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

}  // namespace pipeline::nats
