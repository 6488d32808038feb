#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ingest::http {

/// One request, framed and checked by RequestReader: a complete body
/// (de-chunked), header names in lower case.
struct Request {
  std::string method;     ///< as sent: GET, POST, HEAD, ...
  std::string path;       ///< the target without its query, still percent-encoded
  std::string query;      ///< after '?', without it; "" when none
  int version_minor = 1;  ///< HTTP/1.<minor>
  std::vector<std::pair<std::string, std::string>> headers;  ///< names in lower case, in order
  std::string body;
  bool keep_alive = true;  ///< RFC 9112 §9.3: the connection may serve another request
  std::string client;      ///< the peer's address
  std::chrono::steady_clock::time_point received;  ///< when its first byte arrived

  /// The first value of a header ("" when absent); `name` in lower case.
  std::string_view header(std::string_view name) const;
  /// A query parameter, percent-decoded ('+' stays '+'); nullopt when absent.
  std::optional<std::string> param(std::string_view name) const;
};

/// A response; Content-Length (and Connection where needed) are added when
/// it is written.
struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool close = false;  ///< close the connection after it

  Response& header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
};

/// {"error": message} with `status`.
Response json_error(int status, const std::string& message);

/// The status line's reason phrase.
const char* reason_phrase(int status);

/// The bytes of `response` for a request of HTTP/1.<minor>; `keep_alive`
/// false adds "Connection: close"; `head` leaves the body out.
std::string serialize(const Response& response, int version_minor, bool keep_alive, bool head);

/// The head of a streamed response: no Content-Length; chunked on HTTP/1.1,
/// delimited by the close on HTTP/1.0; "Connection: close" either way.
std::string serialize_stream_head(const Response& head, int version_minor);

/// Percent-decodes `text` ('+' stays '+', RFC 3986); an invalid escape
/// stays as it is.
std::string percent_decode(std::string_view text);

}  // namespace ingest::http
