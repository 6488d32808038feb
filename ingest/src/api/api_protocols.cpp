// The shipper protocols' handlers: OTLP/HTTP logs, the Elasticsearch bulk
// API (with what its clients ask at start-up) and the Loki push API. Each
// decodes its request into verdicts (protocols/), hands them to the one
// publish path (PublishService::publish_body) and answers in its own shape.
#include <cctype>
#include <chrono>
#include <memory>

#include "api/api.hpp"
#include "api/protocol_settings.hpp"
#include "http/content_coding.hpp"
#include "ingest/publish_service.hpp"
#include "pipeline/timestamp.hpp"
#include "protocols/publish_request.hpp"

namespace ingest {
namespace {

using http::Request;
using http::Responder;
using http::Response;

std::string lower_media_type(std::string_view header) {
  std::string type(header.substr(0, header.find(';')));
  type.erase(type.find_last_not_of(" \t") + 1);
  type.erase(0, std::min(type.size(), type.find_first_not_of(" \t")));
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type;
}

// A report's rejected events in words, the first few: an answer's message.
std::string rejections(const PublishReport& report) {
  std::string text;
  std::size_t shown = 0;
  for (const EventResult& result : report.results) {
    if (result.status != EventStatus::kRejected) continue;
    if (shown++ == 3) {
      text += "; ...";
      break;
    }
    if (!text.empty()) text += "; ";
    text += "record " + std::to_string(result.index) + ": " + result.error;
  }
  return text;
}

Response with_body(int status, const char* content_type, std::string body) {
  Response response;
  response.status = status;
  response.content_type = content_type;
  response.body = std::move(body);
  return response;
}

// --- OTLP -------------------------------------------------------------------------

Response otlp_error(otlp::Encoding encoding, int status, int grpc_code,
                    const std::string& message) {
  Response response = with_body(status, otlp::content_type(encoding),
                                otlp::status_body(encoding, grpc_code, message));
  if (status == 429 || status == 503) response.header("Retry-After", "1");
  return response;
}

// --- Elasticsearch ----------------------------------------------------------------

Response es_answer(int status, std::string body) {
  Response response = with_body(status, "application/json", std::move(body));
  // The official clients refuse a 2xx answer without it (their product check).
  response.header("X-Elastic-Product", "Elasticsearch");
  return response;
}

Response es_error(int status, const char* type, const std::string& reason) {
  Response response = es_answer(status, bulk::error_body(status, type, reason));
  if (status == 429 || status == 503) response.header("Retry-After", "1");
  return response;
}

// --- Loki --------------------------------------------------------------------------

Response loki_error(int status, const std::string& message) {
  Response response = with_body(status, "text/plain; charset=utf-8", message + "\n");
  if (status == 429 || status == 503) response.header("Retry-After", "1");
  return response;
}

}  // namespace

IngestApi::Body IngestApi::body_of(const Request& request, std::string* decoded) const {
  http::DecodedBody body = http::decode_content(content_codings(request), request.body,
                                                max_body_bytes_, "INGEST_MAX_BODY_BYTES");
  switch (body.kind) {
    case http::DecodedBody::Kind::kIdentity:
      return {without_bom(request.body), 0, {}};
    case http::DecodedBody::Kind::kDecoded:
      *decoded = std::move(body.text);
      return {without_bom(*decoded), 0, {}};
    case http::DecodedBody::Kind::kUnsupported:
      return {{}, 415, body.error};
    case http::DecodedBody::Kind::kTooLarge:
      return {{}, 413, body.error};
    case http::DecodedBody::Kind::kCorrupt:
      break;
  }
  return {{}, 400, body.error};
}

// GET /: the live page for a browser; Elasticsearch's description (with its
// product header) for a client that does not ask for HTML: shippers call it
// at start-up. HEAD / answers the same without the body.
void IngestApi::root(const Request& request, Responder responder) {
  const std::string accept = lower_media_type(request.header("accept"));
  const bool html = std::string(request.header("accept")).find("text/html") != std::string::npos;
  if (html || accept == "text/html") {
    live_page(request, std::move(responder));
    return;
  }
  responder.send(es_answer(200, bulk::info_body()));
}

void IngestApi::es_cluster_health(const Request& /*request*/, Responder responder) {
  responder.send(
      es_answer(200, R"({"cluster_name":"event-pipeline","status":"green","timed_out":false,)"
                     R"("number_of_nodes":1,"number_of_data_nodes":1,"active_primary_shards":0,)"
                     R"("active_shards":0,"relocating_shards":0,"initializing_shards":0,)"
                     R"("unassigned_shards":0,"pending_tasks":0})"));
}

void IngestApi::es_license(const Request& /*request*/, Responder responder) {
  responder.send(es_answer(200, R"({"license":{"status":"active","uid":"event-pipeline",)"
                                R"("type":"basic","issue_date_in_millis":0}})"));
}

void IngestApi::es_bulk(const Request& request, Responder responder) {
  std::string inflated;
  const Body body = body_of(request, &inflated);
  if (body.status != 0) {
    responder.send(
        es_error(body.status,
                 body.status == 413 ? "content_too_long_exception" : "illegal_argument_exception",
                 body.error));
    return;
  }
  // {index} of /{index}/_bulk, percent-decoded.
  std::string path_index;
  if (request.path != "/_bulk") {
    path_index = http::percent_decode(request.path.substr(1, request.path.size() - 7));
  }
  const auto started = std::chrono::steady_clock::now();
  auto decoded = std::make_shared<bulk::Decoded>(
      bulk::decode(body.text, path_index, protocols_->bulk, protocols_->limits,
                   pipeline::now_utc().micros_since_epoch));
  if (decoded->error) {
    responder.send(es_error(400, "illegal_argument_exception", *decoded->error));
    return;
  }
  if (decoded->too_many) {
    responder.send(es_error(413, "illegal_argument_exception",
                            "more than INGEST_MAX_EVENTS_PER_REQUEST (" +
                                std::to_string(protocols_->limits.max_events_per_request) +
                                ") actions in one bulk request"));
    return;
  }
  auto pending = std::make_shared<Responder>(std::move(responder));
  pipeline::PublishBody verdicts = std::move(decoded->body);
  services_.publish.publish_body(
      std::move(verdicts), request_id_of(request),
      [pending, decoded, started](const PublishReport& report) {
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - started)
                              .count();
        // Item by item, HTTP 200 (a shipper retries the items that say 429).
        pending->send(es_answer(200, bulk::response(*decoded, report, took)));
      });
}

void IngestApi::otlp_logs(const Request& request, Responder responder) {
  const std::string type = lower_media_type(request.header("content-type"));
  otlp::Encoding encoding = otlp::Encoding::kProtobuf;
  if (type == "application/json") {
    encoding = otlp::Encoding::kJson;
  } else if (type != "application/x-protobuf") {
    responder.send(otlp_error(otlp::Encoding::kJson, 415, 3,
                              "Content-Type must be application/x-protobuf or application/json"));
    return;
  }
  std::string inflated;
  const Body body = body_of(request, &inflated);
  if (body.status != 0) {
    responder.send(otlp_error(encoding, body.status, 3, body.error));
    return;
  }
  pipeline::PublishBody verdicts =
      otlp::decode(body.text, encoding, protocols_->otlp, protocols_->limits,
                   pipeline::now_utc().micros_since_epoch);
  if (verdicts.error) {
    const bool large = verdicts.error->kind == pipeline::BodyErrorKind::kTooManyEvents;
    responder.send(otlp_error(encoding, large ? 413 : 400, 3, verdicts.error->message));
    return;
  }
  if (verdicts.verdicts.empty()) {
    responder.send(
        with_body(200, otlp::content_type(encoding), otlp::success_body(encoding, 0, "")));
    return;
  }
  auto pending = std::make_shared<Responder>(std::move(responder));
  services_.publish.publish_body(
      std::move(verdicts), request_id_of(request),
      [pending, encoding](const PublishReport& report) {
        if (report.kind == PublishOutcomeKind::kRetryLater) {
          // Retryable for an OTLP exporter: 503 with Retry-After.
          pending->send(otlp_error(encoding, 503, 14,
                                   "some log records were not accepted by the broker in time; "
                                   "send the request again (its records are deduplicated)"));
        } else if (report.kind == PublishOutcomeKind::kAllRejected) {
          pending->send(otlp_error(encoding, 400, 3, rejections(report)));
        } else {
          pending->send(
              with_body(200, otlp::content_type(encoding),
                        otlp::success_body(encoding, report.rejected, rejections(report))));
        }
      });
}

void IngestApi::loki_push(const Request& request, Responder responder) {
  const std::string type = lower_media_type(request.header("content-type"));
  // As Loki: JSON by its type, anything else protobuf compressed with snappy.
  const loki::Encoding encoding =
      type == "application/json" ? loki::Encoding::kJson : loki::Encoding::kProtobufSnappy;
  std::string inflated;
  const Body body = body_of(request, &inflated);
  if (body.status != 0) {
    responder.send(loki_error(body.status, body.error));
    return;
  }
  pipeline::PublishBody verdicts =
      loki::decode(body.text, encoding, protocols_->loki, protocols_->limits, max_body_bytes_);
  if (verdicts.error) {
    const auto kind = verdicts.error->kind;
    const bool large = kind == pipeline::BodyErrorKind::kTooManyEvents ||
                       kind == pipeline::BodyErrorKind::kTooLarge;
    responder.send(loki_error(large ? 413 : 400, verdicts.error->message));
    return;
  }
  if (verdicts.verdicts.empty()) {
    responder.send(with_body(204, "text/plain; charset=utf-8", ""));
    return;
  }
  auto pending = std::make_shared<Responder>(std::move(responder));
  services_.publish.publish_body(
      std::move(verdicts), request_id_of(request), [pending](const PublishReport& report) {
        if (report.kind == PublishOutcomeKind::kRetryLater) {
          // Promtail, Alloy and the Loki clients retry a 5xx: the resend is harmless.
          pending->send(loki_error(503,
                                   "some entries were not accepted by the broker in time; "
                                   "push them again (entries are deduplicated)"));
        } else if (report.rejected > 0) {
          // The valid entries are stored; the others can never be (Loki's 400).
          pending->send(loki_error(400, rejections(report)));
        } else {
          pending->send(with_body(204, "text/plain; charset=utf-8", ""));
        }
      });
}

}  // namespace ingest
