#include "http/event_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

#include "pipeline/logging.hpp"

namespace ingest::http {
namespace {

constexpr std::uint64_t kWakeId = 0;
constexpr int kMaxEvents = 128;

}  // namespace

EventLoop::EventLoop(std::chrono::milliseconds tick, std::size_t read_buffer)
    : tick_(tick), read_buffer_(read_buffer) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) throw std::runtime_error("epoll_create1/eventfd failed");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kWakeId;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event);
}

EventLoop::~EventLoop() {
  stop();
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void EventLoop::start() {
  thread_ = std::thread([this] { run(); });
}

void EventLoop::stop() {
  quit_ = true;
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

std::uint64_t EventLoop::add(int fd, std::uint32_t events, std::shared_ptr<LoopClient> client) {
  std::uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    id = next_id_++;
    clients_.emplace(id, std::move(client));
  }
  epoll_event event{};
  event.events = events;
  event.data.u64 = id;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    clients_.erase(id);
    return 0;
  }
  return id;
}

bool EventLoop::modify(int fd, std::uint64_t id, std::uint32_t events) const {
  epoll_event event{};
  event.events = events;
  event.data.u64 = id;
  return ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event) == 0;
}

void EventLoop::remove(int fd, std::uint64_t id) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  std::shared_ptr<LoopClient> gone;  // destroyed outside the lock
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = clients_.find(id);
  if (it == clients_.end()) return;
  gone = std::move(it->second);
  clients_.erase(it);
}

void EventLoop::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
}

std::vector<std::shared_ptr<LoopClient>> EventLoop::clients() const {
  std::vector<std::shared_ptr<LoopClient>> out;
  std::lock_guard<std::mutex> lock(mutex_);
  out.reserve(clients_.size());
  for (const auto& entry : clients_) out.push_back(entry.second);
  return out;
}

std::size_t EventLoop::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return clients_.size();
}

void EventLoop::run_tasks() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks.swap(tasks_);
  }
  for (auto& task : tasks) {
    try {
      task();
    } catch (const std::exception& e) {
      pipeline::log::error("http_task_failed", {{"error", pipeline::log::first_line(e.what())}});
    }
  }
}

void EventLoop::run() {
  thread_id_ = std::this_thread::get_id();
  epoll_event events[kMaxEvents];
  auto next_tick = Clock::now() + tick_;
  while (!quit_) {
    const auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - Clock::now());
    const int n = ::epoll_wait(epoll_fd_, events, kMaxEvents,
                               static_cast<int>(std::max<std::int64_t>(0, wait.count())));
    if (n < 0 && errno != EINTR) {
      pipeline::log::error("epoll_wait_failed", {{"errno", errno}});
      break;
    }
    for (int i = 0; i < n && !quit_; ++i) {
      if (events[i].data.u64 == kWakeId) {
        std::uint64_t count = 0;
        [[maybe_unused]] const auto r = ::read(wake_fd_, &count, sizeof count);
        continue;
      }
      std::shared_ptr<LoopClient> client;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto it = clients_.find(events[i].data.u64);
        if (it != clients_.end()) client = it->second;
      }
      if (client) client->on_events(events[i].events);
    }
    if (quit_) break;
    run_tasks();
    const auto now = Clock::now();
    if (now >= next_tick) {
      next_tick = now + tick_;
      for (const auto& client : clients()) client->tick(now);
    }
  }
}

}  // namespace ingest::http
