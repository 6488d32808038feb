#include "loopback_proxy.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "servers.hpp"

namespace testsupport {

LoopbackProxy::LoopbackProxy(std::uint16_t upstream_port)
    : upstream_port_(upstream_port), listener_(listen_loopback(&port_)) {}

LoopbackProxy::~LoopbackProxy() {
  stop();
  ::close(listener_);
}

void LoopbackProxy::start() {
  acceptor_ = std::thread([this] { accept_loop(); });
}

void LoopbackProxy::stop() {
  stopping_ = true;
  if (acceptor_.joinable()) {
    ::shutdown(listener_, SHUT_RDWR);
    acceptor_.join();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& thread : connections_) {
    if (thread.joinable()) thread.join();
  }
}

void LoopbackProxy::accept_loop() {
  while (!stopping_) {
    pollfd pfd{listener_, POLLIN, 0};
    if (::poll(&pfd, 1, 50) <= 0) continue;
    const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    ++accepted_;
    std::lock_guard<std::mutex> lock(mutex_);
    connections_.emplace_back([this, client] { serve(client); });
  }
}

}  // namespace testsupport
