#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "workload.hpp"

namespace loadtest {

/// The shipper protocols loadgen can speak (--body=otlp and the like), each
/// written here from the protocols' own definitions (field numbers of the
/// OTLP and Loki .proto files, Elasticsearch's bulk format), not with
/// ingest's code. A key maps to the same event through every protocol:
/// topic(key) is the topic (service.name, the bulk _index, the Loki label
/// service_name), "loadgen" the source, and the record carries an identity
/// of its own (log.record.uid, the bulk _id; Loki's is the hash of labels,
/// time and line), so a repeated key is a duplicate as with /publish.
enum class Protocol { kOtlpProtobuf, kOtlpJson, kBulk, kLoki };

const char* protocol_path(Protocol protocol);
const char* protocol_content_type(Protocol protocol);

/// The request body for these events.
std::string protocol_body(Protocol protocol, const Workload& workload,
                          const std::vector<PlannedEvent>& events);

/// What an answer says about each event of its request.
enum class EventAnswer {
  kStored,     ///< new (bulk 201)
  kDuplicate,  ///< already stored (bulk 409 on create)
  kDelivered,  ///< taken; the protocol does not say whether new (OTLP 200, Loki 204)
  kRetry,      ///< refused for now (bulk item 429): send it again
  kRejected,   ///< refused for good
};

/// The per-event reading of a 2xx answer of `protocol` to a request of
/// `events` events; an empty vector and `*error` set when the answer does not
/// have the protocol's shape.
std::vector<EventAnswer> read_protocol_answer(Protocol protocol, int status, std::string_view body,
                                              std::size_t events, std::string* error);

}  // namespace loadtest
