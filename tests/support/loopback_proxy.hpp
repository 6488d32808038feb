#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace testsupport {

/// A TCP proxy on 127.0.0.1 in front of a server on 127.0.0.1: it accepts
/// connections on a port of its own and serves each on a thread with
/// serve(), which a fault of a test (CommitCutter, FaultProxy) implements.
class LoopbackProxy {
 public:
  explicit LoopbackProxy(std::uint16_t upstream_port);
  virtual ~LoopbackProxy();
  LoopbackProxy(const LoopbackProxy&) = delete;
  LoopbackProxy& operator=(const LoopbackProxy&) = delete;

  std::uint16_t port() const { return port_; }
  /// Connections accepted so far.
  int accepted() const { return accepted_.load(); }

 protected:
  /// Starts accepting: the last thing a derived constructor does.
  void start();
  /// Stops accepting and joins every connection's thread: the first thing a
  /// derived destructor does (serve() uses the derived object).
  void stop();
  /// One client connection, until it ends or stopping() (closing it is
  /// serve()'s).
  virtual void serve(int client) = 0;
  bool stopping() const { return stopping_.load(); }
  const std::uint16_t upstream_port_;

 private:
  void accept_loop();

  std::uint16_t port_ = 0;  // before listener_: its initializer sets it
  int listener_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<std::thread> connections_;
};

}  // namespace testsupport
