#include "readiness.hpp"

#include <nlohmann/json.hpp>

namespace ingest {

ReadinessResult ReadinessService::check(bool draining) {
  nlohmann::json checks;
  const BrokerStatus broker = broker_.probe();
  // "ok" only when the broker answered: right after it dies the client may
  // still believe it is connected until the socket reports the close.
  checks["nats"] = broker.answered ? "ok" : (broker.connected ? "not responding" : "disconnected");
  checks["stream"] = !broker.answered ? "unknown" : (broker.stream ? "ok" : "missing");
  const bool db_ok = database_.reachable();
  checks["postgres"] = db_ok ? "ok" : "unreachable";
  checks["schema"] = !db_ok ? "unknown" : (database_.schema_ready() ? "ok" : "missing");
  ReadinessResult result;
  result.ready = broker.answered && broker.stream && db_ok && !draining;
  nlohmann::json body{{"status", result.ready ? "ready" : "not ready"}, {"checks", checks}};
  if (draining) body["checks"]["draining"] = true;
  if (!result.ready) body["error"] = "a dependency is not available";
  result.body = body.dump();
  return result;
}

}  // namespace ingest
