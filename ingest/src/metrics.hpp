#pragma once

#include <prometheus/registry.h>

#include <array>
#include <map>
#include <string>

#include "pipeline/metrics.hpp"

namespace ingest {

enum class PublishError;
enum class RejectReason;

/// Every metric of ingest. Label values are fixed sets (routes, status codes,
/// rejection reasons), never event data, so cardinality stays bounded.
struct IngestMetrics {
  IngestMetrics();

  /// A route's counters and histograms; unknown routes share "other".
  prometheus::Histogram& request_duration(const std::string& route);
  prometheus::Counter& requests(const std::string& route, int code);
  /// The reason of a rejection: the field the error names ("topic", ...).
  prometheus::Counter& rejected(RejectReason reason) const;
  prometheus::Counter& publish_error(PublishError error) const;

  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>* requests_family;
  prometheus::Family<prometheus::Histogram>* duration_family;
  prometheus::Histogram* body_bytes;
  prometheus::Gauge* in_flight;
  /// The events table's bytes in PostgreSQL, as the health check last read
  /// them (-1: unknown), and EVENTS_MAX_BYTES.
  prometheus::Gauge* events_bytes;
  prometheus::Gauge* events_max_bytes;
  prometheus::Counter* events_received;
  prometheus::Counter* events_accepted;
  prometheus::Counter* events_duplicate;
  prometheus::Counter* events_failed;
  prometheus::Family<prometheus::Counter>* rejected_family;
  prometheus::Histogram* publish_latency;
  prometheus::Family<prometheus::Counter>* publish_errors_family;
  pipeline::metrics::ServiceGauges up;

 private:
  std::map<std::string, prometheus::Histogram*> durations_;
  std::array<prometheus::Counter*, 8> publish_errors_{};  // by PublishError
  std::array<prometheus::Counter*, 7> rejected_{};        // by RejectReason
  // Filled at construction and only read afterwards (so without a lock): the
  // per-request counter lookup skips building a label set.
  std::map<std::pair<std::string, int>, prometheus::Counter*> requests_;
};

}  // namespace ingest
