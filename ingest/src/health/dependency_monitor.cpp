#include "health/dependency_monitor.hpp"

namespace ingest {

using Clock = std::chrono::steady_clock;

void DependencyMonitor::Watch::run_once() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    running_since_ = Clock::now();
  }
  DependencyState state;
  try {
    state = check_.run();
  } catch (const std::exception&) {
    state = DependencyState{};
  }
  std::lock_guard<std::mutex> lock(mutex_);
  last_ = state;
  running_since_.reset();
}

DependencyState DependencyMonitor::Watch::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  DependencyState state = last_;
  if (running_since_ && Clock::now() - *running_since_ > silent_after_) {
    state.silent = true;
    state.answered = false;
  }
  return state;
}

DependencyMonitor::DependencyMonitor(Check database, Check broker,
                                     std::chrono::milliseconds interval,
                                     std::chrono::milliseconds silent_after)
    : database_(std::move(database), silent_after),
      broker_(std::move(broker), silent_after),
      interval_(interval) {}

DependencyMonitor::~DependencyMonitor() { stop(); }

void DependencyMonitor::start() {
  database_.run_once();
  broker_.run_once();
  database_thread_ = std::thread([this] { loop(database_); });
  broker_thread_ = std::thread([this] { loop(broker_); });
}

void DependencyMonitor::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    quit_ = true;
  }
  wake_.notify_all();
  if (database_thread_.joinable()) database_thread_.join();
  if (broker_thread_.joinable()) broker_thread_.join();
}

void DependencyMonitor::loop(Watch& watch) {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!quit_) {
    lock.unlock();
    watch.run_once();
    lock.lock();
    wake_.wait_for(lock, interval_, [&] { return quit_; });
  }
}

BrokerStatus DependencyMonitor::probe() {
  const DependencyState state = broker_.state();
  BrokerStatus status;
  status.connected = state.connected;
  status.answered = state.answered;
  status.stream = state.answered && state.detail;
  return status;
}

bool DependencyMonitor::reachable() { return database_.state().answered; }

bool DependencyMonitor::schema_ready() {
  const DependencyState state = database_.state();
  return state.answered && state.detail;
}

}  // namespace ingest
