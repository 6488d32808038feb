#pragma once

#include <prometheus/counter.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "message_source.hpp"

namespace processor {

/// Tells the broker "still working on these" every `interval` while a batch
/// is being written, so a slow transaction (a database under load, a lock
/// wait) does not run past AckWait and get the batch redelivered to another
/// worker.
class InProgressTicker {
 public:
  InProgressTicker(std::chrono::milliseconds interval, prometheus::Counter* sent)
      : interval_(interval), sent_(sent), thread_([this] { run(); }) {}
  ~InProgressTicker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  InProgressTicker(const InProgressTicker&) = delete;
  InProgressTicker& operator=(const InProgressTicker&) = delete;

  void begin(FetchedBatch* batch) {
    std::lock_guard<std::mutex> lock(mutex_);
    batch_ = batch;
    cv_.notify_all();
  }
  /// After end() returns the ticker no longer touches the batch.
  void end() {
    std::lock_guard<std::mutex> lock(mutex_);
    batch_ = nullptr;
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!quit_) {
      if (batch_ == nullptr) {
        cv_.wait(lock, [&] { return quit_ || batch_ != nullptr; });
        continue;
      }
      FetchedBatch* watched = batch_;
      if (cv_.wait_for(lock, interval_, [&] { return quit_ || batch_ != watched; })) continue;
      for (int i = 0; i < watched->size(); ++i) natsMsg_InProgress((*watched)[i], nullptr);
      sent_->Increment(watched->size());
    }
  }

  std::chrono::milliseconds interval_;
  prometheus::Counter* sent_;
  std::mutex mutex_;
  std::condition_variable cv_;
  FetchedBatch* batch_ = nullptr;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace processor
