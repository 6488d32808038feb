#pragma once

#include <string>

namespace ingest {

/// What the broker said when asked for the stream.
struct BrokerStatus {
  bool connected = false;  ///< the client holds a connection
  bool answered = false;   ///< the broker answered the stream lookup in time
  bool stream = false;     ///< ... and the stream exists
};

/// The broker as readiness sees it: BrokerAdmin, or a fake.
class BrokerProbe {
 public:
  virtual ~BrokerProbe() = default;
  virtual BrokerStatus probe() = 0;
};

/// The database as readiness sees it: EventStore, or a fake.
class DatabaseProbe {
 public:
  virtual ~DatabaseProbe() = default;
  virtual bool reachable() = 0;
  virtual bool schema_ready() = 0;
  /// Why publishing must stop for the database's storage (the events table
  /// past EVENTS_MAX_BYTES by a tenth), or "" (the default: no bound known).
  virtual std::string storage_problem() { return {}; }
};

/// The answer to GET /ready, free of HTTP.
struct ReadinessResult {
  bool ready = false;
  std::string body;  ///< {"status":..,"checks":{..}}
};

/// GET /ready: ingest takes events when the broker answers and holds the
/// stream, PostgreSQL answers, and it is not draining. The schema is
/// reported, not required: publishing does not need it (the processor
/// creates it), only /events and /stats do.
class ReadinessService {
 public:
  ReadinessService(BrokerProbe& broker, DatabaseProbe& database)
      : broker_(broker), database_(database) {}

  ReadinessResult check(bool draining);

 private:
  BrokerProbe& broker_;
  DatabaseProbe& database_;
};

}  // namespace ingest
