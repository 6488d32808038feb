#pragma once

// OTLP/HTTP logs (POST /v1/logs), protobuf and JSON: each LogRecord becomes
// one event of the one publish path, and the answer is OTLP's own.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "pipeline/event.hpp"

namespace ingest::otlp {

/// How records map onto events (named settings of ingest).
struct Settings {
  /// OTLP_TOPIC_ATTRIBUTE: the resource attribute whose value is the topic
  /// (written as a topic: topic_from); "unknown_service" when absent.
  std::string topic_attribute = "service.name";
};

enum class Encoding { kProtobuf, kJson };

/// What a request decoded to: one verdict per LogRecord in request order,
/// or `body.error` when the body is not an export request at all (400) or
/// has more records than max_events_per_request (413).
///
/// Each record: topic from the resource attribute of Settings; source
/// service.instance.id, else host.name, else "otlp"; timestamp
/// timeUnixNano, else observedTimeUnixNano, else `now_micros`; payload the
/// record as a JSON object (body, severity_number, severity_text,
/// attributes, resource, scope, trace_id and span_id in hex, flags,
/// event_name, and both times as decimal strings of nanoseconds), the
/// same whichever encoding it came in; event_id the attribute
/// log.record.uid when it is a string, else "otlp-" and 32 hex digits of
/// the SHA-256 of topic, source and payload, so that an exporter's resend
/// of the same request is a duplicate.
pipeline::PublishBody decode(std::string_view body, Encoding encoding, const Settings& settings,
                             const pipeline::ValidationLimits& limits, std::int64_t now_micros);

/// The answer to a request whose records were judged: 200 with an empty
/// ExportLogsServiceResponse, or with partialSuccess (rejectedLogRecords,
/// errorMessage) when some were rejected.
std::string success_body(Encoding encoding, std::size_t rejected, const std::string& message);

/// An error answer's body (google.rpc.Status: code, message) in `encoding`.
std::string status_body(Encoding encoding, int grpc_code, const std::string& message);

/// The Content-Type of answers in `encoding`.
const char* content_type(Encoding encoding);

}  // namespace ingest::otlp
