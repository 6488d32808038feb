
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "ingest/server.hpp"
#include "pipeline/logging.hpp"

int main(int argc, char** argv) {
  ingest::IngestConfig config;
  try {
    if (!ingest::load_config(argc, argv, config)) return 0;
    pipeline::init_logging("ingest", config.common.log_level, config.common.log_format);
  } catch (const std::exception& e) {
    std::cerr << "ingest: " << e.what() << "\n";
    return 2;
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A client that goes away mid-response must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);

  try {
    ingest::IngestServer server(config);
    server.start();
    int signal = 0;
    sigwait(&signals, &signal);
    pipeline::log::info("shutdown", {{"signal", signal}});
    // Requests in flight finish; new ones get 503. A request waits at most
    // INGEST_PUBLISH_TIMEOUT for its events' PubAcks and as long again for
    // its count marker's (each with a second of margin).
    const auto budget = 2 * config.publish_timeout + std::chrono::seconds(3);
    // No thread can hang the stop (none waits without a bound), but should
    // one, the process still ends soon after its budget.
    std::thread([budget] {
      std::this_thread::sleep_for(budget + std::chrono::seconds(5));
      pipeline::log::critical("shutdown_forced",
                              {{"reason", "stop took longer than the drain budget"}});
      std::_Exit(1);
    }).detach();
    server.drain(budget);
  } catch (const std::exception& e) {
    pipeline::log::critical("fatal", {{"error", e.what()}});
    return 1;
  }
  return 0;
}
