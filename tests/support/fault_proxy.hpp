#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "loopback_proxy.hpp"

namespace testsupport {

/// A TCP proxy on 127.0.0.1 in front of a server (PostgreSQL, nats-server)
/// that misbehaves as networks do, at the test's word:
///  - blackhole(true): stops forwarding in both directions without closing
///    anything (new connections are accepted and left waiting): the server
///    looks alive to the kernel and silent to the client, as a stopped
///    process or a partition does; blackhole(false) resumes where it was;
///  - throttle(bytes_per_second): at most that rate each way per connection
///    (0: unlimited);
///  - cut(): closes every connection at once (with a reset);
///  - drop_answers(n): the next n times the server sends something, the
///    proxy resets both connections instead of forwarding it: the request
///    arrived and was worked on, its answer is lost (a client's timeout, a
///    load balancer's reset), and the client sends it again.
class FaultProxy final : public LoopbackProxy {
 public:
  explicit FaultProxy(std::uint16_t upstream_port);
  ~FaultProxy() override;

  void blackhole(bool on) { blackhole_ = on; }
  void throttle(std::size_t bytes_per_second) { rate_ = bytes_per_second; }
  void cut() { ++cut_generation_; }
  void drop_answers(int n) { drop_answers_ = n; }
  /// Answers dropped so far.
  int answers_dropped() const { return answers_dropped_.load(); }

 private:
  void serve(int client) override;

  std::atomic<bool> blackhole_{false};
  std::atomic<std::size_t> rate_{0};
  std::atomic<int> cut_generation_{0};
  std::atomic<int> drop_answers_{0};
  std::atomic<int> answers_dropped_{0};
};

}  // namespace testsupport
