
#include <csignal>
#include <iostream>

#include "pipeline/logging.hpp"
#include "processor/processor.hpp"

int main(int argc, char** argv) {
  processor::ProcessorConfig config;
  try {
    if (!processor::load_config(argc, argv, config)) return 0;
    pipeline::init_logging("processor", config.common.log_level, config.common.log_format);
  } catch (const std::exception& e) {
    std::cerr << "processor: " << e.what() << "\n";
    return 2;
  }

  // Signals are taken by sigwait below, never by a worker thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    processor::Processor service(config);
    service.start();
    int signal = 0;
    sigwait(&signals, &signal);
    pipeline::log::info("shutdown", {{"signal", signal}});
    service.stop();
  } catch (const std::exception& e) {
    pipeline::log::critical("fatal", {{"error", e.what()}});
    return 1;
  }
  return 0;
}
