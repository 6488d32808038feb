#include "commit_cutter.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>

namespace testsupport {
namespace {

std::uint32_t read_be32(const char* p) {
  std::uint32_t v = 0;
  std::memcpy(&v, p, 4);
  return ntohl(v);
}

bool send_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

int connect_loopback(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

CommitCutter::CommitCutter(std::uint16_t upstream_port, int every)
    : upstream_port_(upstream_port), every_(every) {
  listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener_, 64) != 0) {
    throw std::runtime_error("commit cutter: cannot listen");
  }
  socklen_t len = sizeof addr;
  ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

CommitCutter::~CommitCutter() {
  stopping_ = true;
  ::shutdown(listener_, SHUT_RDWR);
  acceptor_.join();
  ::close(listener_);
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& t : connections_) t.join();
}

void CommitCutter::accept_loop() {
  while (!stopping_) {
    pollfd pfd{listener_, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    const int client = ::accept(listener_, nullptr, nullptr);
    if (client < 0) continue;
    std::lock_guard<std::mutex> lock(mutex_);
    connections_.emplace_back([this, client] { serve(client); });
  }
}

// Forwards both ways; parses the client's side into messages: the first one
// (and the one after an SSLRequest) has no type byte, every later one is a
// type byte and a 4-byte length that counts itself.
void CommitCutter::serve(int client) {
  const int server = connect_loopback(upstream_port_);
  if (server < 0) {
    ::close(client);
    return;
  }
  std::string pending;  // client bytes not yet forwarded (an incomplete message)
  bool untyped = true;
  char buffer[65536];
  bool open = true;
  while (open && !stopping_) {
    pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    if (::poll(fds, 2, 100) <= 0) continue;
    if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t n = ::recv(server, buffer, sizeof buffer, 0);
      if (n <= 0 || !send_all(client, buffer, static_cast<std::size_t>(n))) break;
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    const ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    pending.append(buffer, static_cast<std::size_t>(n));
    std::size_t offset = 0;
    while (open) {
      const std::size_t header = untyped ? 4 : 5;
      if (pending.size() - offset < header) break;
      const char* p = pending.data() + offset;
      const std::size_t length = read_be32(untyped ? p : p + 1);
      const std::size_t total = (untyped ? 0 : 1) + length;
      if (pending.size() - offset < total) break;
      bool cut = false;
      if (untyped) {
        // SSLRequest (code 80877103) is followed by another untyped message.
        untyped = length == 8 && read_be32(p + 4) == 80877103;
      } else if (p[0] == 'Q' && length >= 10 && ::strncasecmp(p + 5, "COMMIT", 6) == 0) {
        const int seen = ++commits_;
        cut = cutting_ && seen % every_ == 0;
      }
      if (!send_all(server, p, total)) {
        open = false;
        break;
      }
      offset += total;
      if (cut) {
        const int cut_number = ++cuts_;
        if (cut_number % 2 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        open = false;
      }
    }
    pending.erase(0, offset);
  }
  ::shutdown(client, SHUT_RDWR);
  ::shutdown(server, SHUT_RDWR);
  ::close(client);
  ::close(server);
}

}  // namespace testsupport
