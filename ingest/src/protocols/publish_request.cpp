#include "protocols/publish_request.hpp"

#include <algorithm>
#include <cctype>

#include "http/content_coding.hpp"
#include "pipeline/cloudevents.hpp"

namespace ingest {
namespace {

// The media type without parameters, in lower case.
std::string media_type(std::string_view header) {
  std::string base(header.substr(0, header.find(';')));
  base.erase(base.find_last_not_of(" \t") + 1);
  base.erase(0, std::min(base.size(), base.find_first_not_of(" \t")));
  std::transform(base.begin(), base.end(), base.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return base;
}

// A media type (from media_type) a native JSON body may come with.
bool is_json_type(const std::string& type) {
  return type == "application/json" || type == "application/x-www-form-urlencoded" ||
         (type.size() > 5 && type.compare(type.size() - 5, 5, "+json") == 0);
}

// The CloudEvents attributes of a binary-mode request: every ce- header,
// its value percent-decoded (the HTTP binding, §3.1.3.2).
std::vector<std::pair<std::string, std::string>> binary_attributes(const http::Request& request) {
  std::vector<std::pair<std::string, std::string>> attributes;
  for (const auto& [name, value] : request.headers) {
    if (name.size() > 3 && name.compare(0, 3, "ce-") == 0) {
      attributes.emplace_back(name.substr(3), http::percent_decode(value));
    }
  }
  return attributes;
}

// The body's format from the Content-Type (and the ce- headers), or the
// 415 answer.
std::optional<http::Response> find_format(const http::Request& request, PublishInput* input) {
  const std::string_view content_type = request.header("content-type");
  const std::string type = media_type(content_type);
  if (type == "application/cloudevents+json") {
    input->format = BodyFormat::kCloudEvent;
  } else if (type == "application/cloudevents-batch+json") {
    input->format = BodyFormat::kCloudEventBatch;
  } else if (auto attributes = binary_attributes(request); !attributes.empty()) {
    // Binary mode: the Content-Type is the datacontenttype of the data.
    if (!type.empty() && !pipeline::cloudevents::is_json_media_type(type)) {
      return http::json_error(415,
                              "datacontenttype: only JSON data is taken in binary mode "
                              "(Content-Type application/json or a +json type)");
    }
    input->format = BodyFormat::kCloudEventBinary;
    input->attributes = std::move(attributes);
  } else if (type == "application/x-ndjson" || type == "application/ndjson") {
    input->format = BodyFormat::kNdjson;
  } else if (content_type.empty() || is_json_type(type)) {
    input->format = BodyFormat::kJson;
  } else {
    return http::json_error(415,
                            "Content-Type must be application/json, application/x-ndjson, "
                            "application/cloudevents+json or application/cloudevents-batch+json");
  }
  return std::nullopt;
}

}  // namespace

// Every Content-Encoding field as one list (RFC 9110 §5.3: repeated fields
// are one list), so that a second field is never overlooked.
std::string content_codings(const http::Request& request) {
  std::string codings;
  for (const auto& [name, value] : request.headers) {
    if (name != "content-encoding") continue;
    if (!codings.empty()) codings += ", ";
    codings += value;
  }
  return codings;
}

std::string_view without_bom(std::string_view body) {
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  if (body.substr(0, kBom.size()) == kBom) body.remove_prefix(kBom.size());
  return body;
}

bool acceptable_content_type(std::string_view header) {
  return header.empty() || is_json_type(media_type(header));
}

std::optional<http::Response> read_publish_request(const http::Request& request,
                                                   std::size_t max_body_bytes, std::string* decoded,
                                                   PublishInput* input) {
  if (auto refusal = find_format(request, input)) return refusal;
  http::DecodedBody body = http::decode_content(content_codings(request), request.body,
                                                max_body_bytes, "INGEST_MAX_BODY_BYTES");
  switch (body.kind) {
    case http::DecodedBody::Kind::kIdentity:
      input->body = without_bom(request.body);
      return std::nullopt;
    case http::DecodedBody::Kind::kDecoded:
      *decoded = std::move(body.text);
      input->body = without_bom(*decoded);
      return std::nullopt;
    case http::DecodedBody::Kind::kUnsupported: {
      http::Response response = http::json_error(415, body.error);
      response.header("Accept-Encoding", "gzip, deflate");
      return response;
    }
    case http::DecodedBody::Kind::kTooLarge:
      return http::json_error(413, body.error);
    case http::DecodedBody::Kind::kCorrupt:
      break;
  }
  return http::json_error(400, body.error);
}

}  // namespace ingest
