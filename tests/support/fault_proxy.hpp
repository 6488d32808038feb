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
///  - cut(): closes every connection at once (with a reset).
class FaultProxy final : public LoopbackProxy {
 public:
  explicit FaultProxy(std::uint16_t upstream_port);
  ~FaultProxy() override;

  void blackhole(bool on) { blackhole_ = on; }
  void throttle(std::size_t bytes_per_second) { rate_ = bytes_per_second; }
  void cut() { ++cut_generation_; }

 private:
  void serve(int client) override;

  std::atomic<bool> blackhole_{false};
  std::atomic<std::size_t> rate_{0};
  std::atomic<int> cut_generation_{0};
};

}  // namespace testsupport
