#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>

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
    spdlog::info("event=shutdown signal={}", signal);
    // Requests in flight finish (within the publish timeout); new ones get 503.
    server.drain(config.publish_timeout + std::chrono::seconds(5));
  } catch (const std::exception& e) {
    spdlog::critical("event=fatal error=\"{}\"", e.what());
    return 1;
  }
  return 0;
}
