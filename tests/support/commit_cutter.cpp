#include "commit_cutter.hpp"
#include "servers.hpp"

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

}  // namespace

CommitCutter::CommitCutter(std::uint16_t upstream_port, int every)
    : LoopbackProxy(upstream_port), every_(every) {
  start();
}

CommitCutter::~CommitCutter() { stop(); }

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
  while (open && !stopping()) {
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
