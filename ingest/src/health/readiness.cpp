#include "health/readiness.hpp"

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
  checks["postgres"] = db_ok ? "ok" : "not responding";
  checks["schema"] = !db_ok ? "unknown" : (database_.schema_ready() ? "ok" : "missing");
  const std::string storage = db_ok ? database_.storage_problem() : std::string();
  checks["storage"] = storage.empty() ? "ok" : "full";
  ReadinessResult result;
  result.ready = broker.answered && broker.stream && db_ok && storage.empty() && !draining;
  nlohmann::json body{{"status", result.ready ? "ready" : "not ready"}, {"checks", checks}};
  if (draining) body["checks"]["draining"] = true;
  if (!result.ready) {
    // Which one, in words: an operator reads this first.
    std::string what;
    const auto add = [&](const std::string& part) { what += (what.empty() ? "" : "; ") + part; };
    if (!db_ok) add("postgres " + checks["postgres"].get<std::string>());
    if (!broker.answered) add("nats " + checks["nats"].get<std::string>());
    if (broker.answered && !broker.stream) add("stream missing");
    if (!storage.empty()) add(storage);
    if (draining) add("draining");
    body["error"] = "not ready: " + what;
  }
  result.body = body.dump();
  return result;
}

}  // namespace ingest
