#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "health/readiness.hpp"

namespace ingest {

/// The last word of one dependency's health check.
struct DependencyState {
  bool answered = false;   ///< the last check finished in time and succeeded
  bool detail = false;     ///< what the check found besides (the stream, the schema)
  bool connected = false;  ///< the client holds a connection (the broker)
  /// A check is under way and has taken longer than the limit: the
  /// dependency is silent, whatever the last finished check said.
  bool silent = false;
  /// What the events table takes in PostgreSQL (-1: not known).
  std::int64_t events_bytes = -1;
};

/// Watches PostgreSQL and the broker on threads of its own, every
/// `interval`, each check with its own deadline, so that nobody else waits
/// on them: GET /ready, /metrics and the fast refusals of /events and
/// /stats read the last word at once. A dependency whose check has not
/// finished within `silent_after` is "not responding" from then on, even
/// while the check still waits.
class DependencyMonitor final : public BrokerProbe, public DatabaseProbe {
 public:
  struct Check {
    /// Whether it answered, what it found (detail), whether connected.
    std::function<DependencyState()> run;
  };
  /// `events_max_bytes`: EVENTS_MAX_BYTES (0: no bound), against the
  /// database check's events_bytes.
  DependencyMonitor(Check database, Check broker, std::chrono::milliseconds interval,
                    std::chrono::milliseconds silent_after, std::int64_t events_max_bytes = 0);
  ~DependencyMonitor() override;  ///< stop()
  DependencyMonitor(const DependencyMonitor&) = delete;
  DependencyMonitor& operator=(const DependencyMonitor&) = delete;

  /// Checks both once (so that the first answers are known), then keeps
  /// checking on two threads.
  void start();
  void stop();

  DependencyState database() const { return database_.state(); }
  DependencyState broker() const { return broker_.state(); }

  // BrokerProbe, DatabaseProbe (ReadinessService): the last word, no wait.
  BrokerStatus probe() override;
  bool reachable() override;
  bool schema_ready() override;
  std::string storage_problem() override;

 private:
  class Watch {
   public:
    Watch(Check check, std::chrono::milliseconds silent_after)
        : check_(std::move(check)), silent_after_(silent_after) {}
    void run_once();
    DependencyState state() const;

   private:
    Check check_;
    std::chrono::milliseconds silent_after_;
    mutable std::mutex mutex_;
    DependencyState last_;
    std::optional<std::chrono::steady_clock::time_point> running_since_;
  };

  void loop(Watch& watch);

  Watch database_;
  Watch broker_;
  std::chrono::milliseconds interval_;
  std::int64_t events_max_bytes_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool quit_ = false;
  std::thread database_thread_;
  std::thread broker_thread_;
};

}  // namespace ingest
