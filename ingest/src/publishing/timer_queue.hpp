#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace ingest {

/// Runs tasks at given times on one thread of its own, earliest first.
/// Tasks must be short (they delay the ones behind them). Destroying the
/// queue runs nothing more and joins the thread.
class TimerQueue {
 public:
  using Clock = std::chrono::steady_clock;

  TimerQueue() : thread_([this] { run(); }) {}
  ~TimerQueue() { stop(); }

  /// Runs nothing more; returns once the thread is gone. Idempotent.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  void at(Clock::time_point when, std::function<void()> task) {
    bool sooner = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (quit_) return;
      // The thread needs waking only when this task comes before the one it
      // waits for (most tasks come later: one wake-up less per request).
      sooner = tasks_.empty() || when < tasks_.top().when;
      tasks_.push({when, next_id_++, std::move(task)});
    }
    if (sooner) cv_.notify_one();
  }

 private:
  struct Task {
    Clock::time_point when;
    std::uint64_t id;  // keeps equal times in the order they were added
    std::function<void()> run;
    bool operator>(const Task& other) const {
      return when != other.when ? when > other.when : id > other.id;
    }
  };

  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!quit_) {
      if (tasks_.empty()) {
        cv_.wait(lock);
        continue;
      }
      const auto when = tasks_.top().when;
      if (Clock::now() < when) {
        cv_.wait_until(lock, when);
        continue;
      }
      Task task = tasks_.top();
      tasks_.pop();
      lock.unlock();
      task.run();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::priority_queue<Task, std::vector<Task>, std::greater<>> tasks_;
  std::uint64_t next_id_ = 0;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace ingest
