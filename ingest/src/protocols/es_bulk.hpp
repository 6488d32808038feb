#pragma once

// The Elasticsearch bulk API (POST /_bulk, POST /{index}/_bulk): create and
// index actions become events of the one publish path; the answer is
// Elasticsearch's, item by item, so that shippers' retry logic does the
// right thing. Also the few answers shippers ask for at start-up.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/publish_service.hpp"
#include "pipeline/event.hpp"

namespace ingest::bulk {

/// How documents map onto events (named settings of ingest).
struct Settings {
  /// BULK_SOURCE_FIELDS: the first of these document fields holding a
  /// string is the source (a dotted name is looked up as such and as a
  /// path: "host.name" finds {"host.name": ..} and {"host": {"name": ..}});
  /// "bulk" when none does.
  std::vector<std::string> source_fields = {"host.name", "host"};
};

enum class Action { kCreate, kIndex, kUpdate, kDelete };

/// One action of the request, in order.
struct Item {
  Action action = Action::kIndex;
  std::string index;
  std::string id;           ///< as sent; the event_id when it is the item's own
  std::string error;        ///< an item this server refuses by itself (400); "" when none
  std::size_t verdict = 0;  ///< its verdict's index, when `error` is empty
};

struct Decoded {
  /// A request Elasticsearch would refuse whole (400): malformed action
  /// line, no final newline, no action at all.
  std::optional<std::string> error;
  bool too_many = false;  ///< more items than max_events_per_request (413)
  std::vector<Item> items;
  pipeline::PublishBody body;  ///< a verdict per create or index item
};

/// Reads an NDJSON bulk body. `path_index` is the {index} of the path ("" for
/// /_bulk). Each create or index item: topic its _index (topic_from); event_id
/// its _id, else "bulk-" and 32 hex digits of the SHA-256 of index and
/// document, so that a resent request is a duplicate; timestamp @timestamp,
/// else timestamp (RFC 3339, a date-time without zone taken as UTC, a date,
/// or epoch milliseconds), else `now_micros`; source as Settings say;
/// payload the document exactly as sent.
Decoded decode(std::string_view body, std::string_view path_index, const Settings& settings,
               const pipeline::ValidationLimits& limits, std::int64_t now_micros);

/// The bulk answer for `decoded` once its verdicts were published: per item
/// 201 created, 409 version_conflict_engine_exception for a create whose
/// document exists (an index action's repeat: 200 noop), 400 for a document
/// refused, 429 es_rejected_execution_exception for one the broker did not
/// acknowledge in time (a shipper sends it again); `errors` when any item
/// is 400 or more.
std::string response(const Decoded& decoded, const PublishReport& report, std::int64_t took_ms);

/// Elasticsearch's error envelope: {"error":{"root_cause":[..],"type","reason"},"status"}.
std::string error_body(int status, const std::string& type, const std::string& reason);

/// GET /: the node's description with an 8.x version (what clients check).
std::string info_body();

}  // namespace ingest::bulk
