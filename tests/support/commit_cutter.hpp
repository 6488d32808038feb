#pragma once

#include <atomic>
#include <cstdint>

#include "loopback_proxy.hpp"

namespace testsupport {

/// A TCP proxy on 127.0.0.1 in front of a PostgreSQL server that reads the
/// client's messages of the PostgreSQL wire protocol and, for every
/// `every`-th COMMIT (a simple-query 'Q' message, as libpqxx sends it),
/// forwards it and then cuts the connection: the client never learns
/// whether its transaction committed. Half the cuts come at once (the
/// server may not have committed yet), half after 50 ms (it has).
class CommitCutter final : public LoopbackProxy {
 public:
  CommitCutter(std::uint16_t upstream_port, int every);
  ~CommitCutter() override;

  /// COMMITs cut so far.
  int cuts() const { return cuts_.load(); }
  /// COMMITs seen so far.
  int commits() const { return commits_.load(); }
  void set_cutting(bool on) { cutting_ = on; }

 private:
  void serve(int client) override;

  int every_;
  std::atomic<bool> cutting_{true};
  std::atomic<int> cuts_{0};
  std::atomic<int> commits_{0};
};

}  // namespace testsupport
