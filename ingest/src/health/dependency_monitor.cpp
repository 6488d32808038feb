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
                                     std::chrono::milliseconds silent_after,
                                     std::int64_t events_max_bytes)
    : database_(std::move(database), silent_after),
      broker_(std::move(broker), silent_after),
      interval_(interval),
      events_max_bytes_(events_max_bytes) {}

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

std::string DependencyMonitor::storage_problem() {
  const std::int64_t bytes = database_.state().events_bytes;
  // Retention keeps the table under EVENTS_MAX_BYTES by dropping partitions;
  // a tenth more means it cannot (the partitions being written outgrew the
  // bound): publishing stops before the disk fills, not after.
  if (events_max_bytes_ <= 0 || bytes <= events_max_bytes_ + events_max_bytes_ / 10) return {};
  return "storage: the events table takes " + std::to_string(bytes) +
         " bytes, past EVENTS_MAX_BYTES (" + std::to_string(events_max_bytes_) +
         ") by more than a tenth, and retention cannot drop the partitions being written";
}

}  // namespace ingest
