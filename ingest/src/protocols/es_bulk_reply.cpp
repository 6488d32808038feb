// Elasticsearch's answers: the bulk response item by item, the error
// envelope, and GET / (the node's description).
#include "pipeline/json_text.hpp"
#include "protocols/es_bulk.hpp"

namespace ingest::bulk {
namespace {

const char* action_name(Action action) {
  switch (action) {
    case Action::kCreate:
      return "create";
    case Action::kIndex:
      return "index";
    case Action::kUpdate:
      return "update";
    case Action::kDelete:
      break;
  }
  return "delete";
}

void append_error(std::string& out, const char* type, const std::string& reason,
                  const std::string& index) {
  out += ",\"error\":{\"type\":\"";
  out += type;
  out += "\",\"reason\":";
  pipeline::append_json_string(out, reason);
  if (!index.empty()) {
    out += ",\"index\":";
    pipeline::append_json_string(out, index);
  }
  out += '}';
}

}  // namespace

std::string response(const Decoded& decoded, const PublishReport& report, std::int64_t took_ms) {
  std::string items;
  bool errors = false;
  std::int64_t seq_no = 0;
  for (const Item& item : decoded.items) {
    const EventResult* result = item.error.empty() && item.verdict < report.results.size()
                                    ? &report.results[item.verdict]
                                    : nullptr;
    const std::string id = result != nullptr && item.id.empty() ? result->event_id : item.id;
    if (!items.empty()) items += ',';
    items += "{\"";
    items += action_name(item.action);
    items += "\":{\"_index\":";
    pipeline::append_json_string(items, item.index);
    items += ",\"_id\":";
    pipeline::append_json_string(items, id);
    int status = 400;
    if (result == nullptr) {
      append_error(items, "illegal_argument_exception", item.error, item.index);
    } else if (result->status == EventStatus::kAccepted ||
               (result->status == EventStatus::kDuplicate && item.action == Action::kIndex)) {
      const bool created = result->status == EventStatus::kAccepted;
      status = created ? 201 : 200;
      items += ",\"_version\":1,\"result\":\"";
      items += created ? "created" : "noop";
      items += "\",\"_shards\":{\"total\":1,\"successful\":1,\"failed\":0},\"_seq_no\":" +
               std::to_string(seq_no++) + ",\"_primary_term\":1";
    } else if (result->status == EventStatus::kDuplicate) {
      status = 409;
      append_error(items, "version_conflict_engine_exception",
                   "[" + id + "]: version conflict, document already exists (current version [1])",
                   item.index);
    } else if (result->status == EventStatus::kFailed) {
      status = 429;
      append_error(items, "es_rejected_execution_exception",
                   "rejected execution: the broker did not acknowledge the document in time (" +
                       result->error + "); send it again",
                   item.index);
    } else {
      append_error(items, "document_parsing_exception", result->error, item.index);
    }
    items += ",\"status\":" + std::to_string(status) + "}}";
    errors = errors || status >= 400;
  }
  // took and errors before items, compact: Vector looks for "errors":true,
  // Fluent Bit for "errors":false,"items":[ in the text.
  return "{\"took\":" + std::to_string(took_ms) + ",\"errors\":" + (errors ? "true" : "false") +
         ",\"items\":[" + items + "]}";
}

std::string error_body(int status, const std::string& type, const std::string& reason) {
  std::string cause = "{\"type\":";
  pipeline::append_json_string(cause, type);
  cause += ",\"reason\":";
  pipeline::append_json_string(cause, reason);
  cause += '}';
  std::string out = "{\"error\":{\"root_cause\":[" + cause + "],";
  out += cause.substr(1, cause.size() - 2);
  out += "},\"status\":" + std::to_string(status) + "}";
  return out;
}

std::string info_body() {
  return R"({"name":"ingest","cluster_name":"event-pipeline","cluster_uuid":"event-pipeline",)"
         R"("version":{"number":"8.17.0","build_flavor":"default","build_type":"deb",)"
         R"("build_hash":"event-pipeline","build_date":"2026-12-04T00:00:00.000Z",)"
         R"("build_snapshot":false,"lucene_version":"9.12.0",)"
         R"("minimum_wire_compatibility_version":"7.17.0",)"
         R"("minimum_index_compatibility_version":"7.0.0"},"tagline":"You Know, for Search"})";
}

}  // namespace ingest::bulk
