#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "processor/config.hpp"

namespace prometheus {
class Exposer;
}

namespace processor {

class Retention;
class DeliveryGaps;
class KeyFilters;

struct ProcessorMetrics;

/// Running totals of this process (not durable: the durable counters live in
/// PostgreSQL).
struct ProcessorTotals {
  std::atomic<std::uint64_t> fetched{0};
  std::atomic<std::uint64_t> stored{0};
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<std::uint64_t> redelivered{0};
  std::atomic<std::uint64_t> dead_lettered{0};
  std::atomic<std::uint64_t> replaced{0};
  std::atomic<std::uint64_t> transient_errors{0};
  std::atomic<std::uint64_t> retried{0};  ///< messages NAKed to be delivered again
  std::atomic<std::uint64_t> batches{0};
};

/// The JetStream-to-PostgreSQL service: `workers` threads, each with its own
/// pull subscription on the shared durable consumer and its own database
/// connection, each batch written in one transaction and acked after COMMIT.
class Processor {
 public:
  /// Connects to NATS (creating stream and consumer if missing) and applies
  /// the migrations. Throws pipeline::nats::NatsError or a pqxx error when a
  /// server stays unreachable for CONNECT_TIMEOUT.
  explicit Processor(ProcessorConfig config);
  ~Processor();
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  void start();
  /// Stops fetching, lets every worker finish, commit and ack the batch in
  /// hand, then joins them. Idempotent.
  void stop();

  const ProcessorTotals& totals() const { return totals_; }

  /// The port of GET /metrics (0 when off).
  std::uint16_t metrics_port() const;

 private:
  ProcessorConfig config_;
  /// The consumer's settings in effect (the running consumer's, when kept).
  pipeline::nats::ConsumerSettings consumer_;
  pipeline::nats::ConnectionPtr conn_;
  pipeline::nats::JetStreamPtr js_;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> workers_;
  std::thread health_;
  std::thread retention_thread_;
  ProcessorTotals totals_;
  std::unique_ptr<ProcessorMetrics> metrics_;
  std::unique_ptr<Retention> retention_;
  std::unique_ptr<DeliveryGaps> gaps_;   ///< shared by the workers
  std::shared_ptr<KeyFilters> filters_;  ///< read by the workers, refreshed by retention_
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace processor
