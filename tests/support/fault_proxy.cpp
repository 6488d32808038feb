#include "fault_proxy.hpp"
#include "servers.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <string>

namespace testsupport {
namespace {

using Clock = std::chrono::steady_clock;

// Closes with a reset rather than a FIN: a cut, not a goodbye.
void reset_close(int fd) {
  linger option{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, sizeof option);
  ::close(fd);
}

// One direction of a connection: bytes read and not yet written, and the
// token bucket of the throttle.
struct Direction {
  int from;
  int to;
  std::string pending;
  double tokens = 0;
  bool done = false;
};

}  // namespace

FaultProxy::FaultProxy(std::uint16_t upstream_port) : LoopbackProxy(upstream_port) { start(); }

FaultProxy::~FaultProxy() { stop(); }

void FaultProxy::serve(int client) {
  const int generation = cut_generation_;
  // A blackholed proxy connects upstream only once it forwards again.
  while (blackhole_ && !stopping() && cut_generation_ == generation) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const int server =
      stopping() || cut_generation_ != generation ? -1 : connect_loopback(upstream_port_);
  if (server < 0) {
    reset_close(client);
    return;
  }
  Direction up{client, server, {}, 0, false};
  Direction down{server, client, {}, 0, false};
  auto last = Clock::now();
  char buffer[16384];
  while (!stopping() && cut_generation_ == generation && !(up.done && down.done)) {
    if (blackhole_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      last = Clock::now();
      continue;
    }
    const std::size_t rate = rate_;
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - last).count();
    last = now;
    for (Direction* d : {&up, &down}) {
      d->tokens = rate == 0 ? 1e12
                            : std::min<double>(static_cast<double>(rate),
                                               d->tokens + elapsed * static_cast<double>(rate));
    }
    pollfd fds[4] = {
        {up.from, static_cast<short>(up.done || !up.pending.empty() ? 0 : POLLIN), 0},
        {down.from, static_cast<short>(down.done || !down.pending.empty() ? 0 : POLLIN), 0},
        {up.to, static_cast<short>(up.pending.empty() || up.tokens < 1 ? 0 : POLLOUT), 0},
        {down.to, static_cast<short>(down.pending.empty() || down.tokens < 1 ? 0 : POLLOUT), 0},
    };
    ::poll(fds, 4, 20);
    bool broken = false;
    for (int i = 0; i < 2; ++i) {
      Direction& d = i == 0 ? up : down;
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        const ssize_t n = ::recv(d.from, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n > 0 && i == 1 && drop_answers_.load() > 0 && drop_answers_.fetch_sub(1) > 0) {
          ++answers_dropped_;  // the server's answer, lost on the way
          broken = true;
          break;
        }
        if (n > 0) {
          d.pending.append(buffer, static_cast<std::size_t>(n));
        } else if (n == 0) {
          d.done = true;
          ::shutdown(d.to, SHUT_WR);
        } else if (errno != EAGAIN && errno != EINTR) {
          broken = true;
        }
      }
      if (!d.pending.empty() && d.tokens >= 1) {
        const std::size_t allowed =
            std::min(d.pending.size(), static_cast<std::size_t>(std::max(1.0, d.tokens)));
        const ssize_t n = ::send(d.to, d.pending.data(), allowed, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          d.pending.erase(0, static_cast<std::size_t>(n));
          d.tokens -= static_cast<double>(n);
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          broken = true;
        }
      }
    }
    if (broken) break;
  }
  reset_close(client);
  reset_close(server);
}

}  // namespace testsupport
