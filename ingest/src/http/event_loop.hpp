#pragma once

// One I/O thread of the HTTP server: an epoll set of connections, a queue of
// tasks other threads hand it, and a tick for deadlines. Private to src/http/.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace ingest::http {

using Clock = std::chrono::steady_clock;

/// What an EventLoop drives: a connection (or the listener).
class LoopClient {
 public:
  virtual ~LoopClient() = default;
  /// epoll reported `events` (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR).
  virtual void on_events(std::uint32_t events) = 0;
  /// Deadlines; called every tick.
  virtual void tick(Clock::time_point now) = 0;
};

class EventLoop {
 public:
  /// `read_buffer`: the size of the buffer reads go through.
  EventLoop(std::chrono::milliseconds tick, std::size_t read_buffer);
  ~EventLoop();  ///< stop()
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void start();
  /// Runs no more events or tasks; joins the thread. Idempotent.
  void stop();

  /// Watches `fd` for `events` on behalf of `client`; returns its id. Any thread.
  std::uint64_t add(int fd, std::uint32_t events, std::shared_ptr<LoopClient> client);
  /// Changes what `fd` is watched for. Any thread; false when epoll refused.
  bool modify(int fd, std::uint64_t id, std::uint32_t events) const;
  /// Stops watching `fd` and forgets the client (call before closing fd). Any thread.
  void remove(int fd, std::uint64_t id);
  /// Runs `task` on the loop's thread, soon. Any thread.
  void post(std::function<void()> task);
  /// The clients watched now.
  std::vector<std::shared_ptr<LoopClient>> clients() const;
  std::size_t size() const;
  bool on_loop_thread() const { return std::this_thread::get_id() == thread_id_.load(); }
  /// A buffer for the loop thread's reads (on the heap: a thread_local this
  /// size would be taken from every thread's stack, other libraries' too).
  std::vector<char>& read_buffer() { return read_buffer_; }

 private:
  void run();
  void run_tasks();

  const std::chrono::milliseconds tick_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> quit_{false};
  std::atomic<std::thread::id> thread_id_{};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::shared_ptr<LoopClient>> clients_;
  std::uint64_t next_id_ = 1;
  std::vector<std::function<void()>> tasks_;
  std::vector<char> read_buffer_;
};

}  // namespace ingest::http
