#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "body_coding.hpp"

namespace httplib {
class Client;
}

namespace loadtest {

/// A parsed HTTP/1.1 response.
struct HttpResponse {
  int status = 0;  ///< 0 when no answer came
  std::string body;
  std::string retry_after;  ///< the Retry-After header, "" when absent
  bool close = false;       ///< the server will close the connection after it
};

enum class ParseResult { kIncomplete, kComplete, kError };

/// Takes one complete response off the front of `buffer` (Content-Length
/// framing; chunked bodies are an error: ingest never sends them).
ParseResult take_response(std::string& buffer, HttpResponse& out, std::string* error);

/// Case-insensitive equality (header names, tokens).
bool iequals(std::string_view a, std::string_view b);

/// Called with each header field's name and value (trimmed).
using HeaderField = std::function<void(std::string_view name, std::string_view value)>;
/// Reads a response head (status line and fields, without the blank line):
/// its status, or 0 with `error` set when the status line is not HTTP/1.x.
int read_response_head(std::string_view head, const HeaderField& field, std::string* error);

/// The port of "http://127.0.0.1:PORT" or "http://localhost:PORT". Throws
/// std::invalid_argument for any other host: load only ever goes to loopback.
std::uint16_t loopback_port(const std::string& url);

/// A TCP connection to 127.0.0.1:port with TCP_NODELAY, or -1. A `rcvbuf`
/// above 0 sets SO_RCVBUF before connecting (a small window: a client that
/// does not read fills it at once).
int connect_loopback(std::uint16_t port, bool nonblocking, int rcvbuf = 0);

/// A blocking keep-alive client for the few control requests (GET /stats):
/// cpp-httplib's. The load itself goes through publisher.cpp's epoll engine,
/// which needs the framing functions above: hundreds of connections on one
/// thread, each with requests in flight, is not what a blocking client does.
class BlockingClient {
 public:
  BlockingClient(std::uint16_t port, std::string authorization, int timeout_ms);
  ~BlockingClient();
  BlockingClient(const BlockingClient&) = delete;
  BlockingClient& operator=(const BlockingClient&) = delete;

  /// status 0 when no answer came within the timeout.
  HttpResponse get(const std::string& path);

 private:
  std::unique_ptr<httplib::Client> client_;
  std::string authorization_;
};

/// The request line and headers of a request to 127.0.0.1. HTTP/1.1 keeps
/// the connection by default; `keep_alive_header` adds "Connection:
/// keep-alive" anyway (what this project's clients used to send). A POST
/// carries `coding`'s Content-Type (and Content-Encoding when compressed).
std::string request_head(const std::string& method, const std::string& path, std::uint16_t port,
                         const std::string& authorization, std::size_t content_length,
                         bool keep_alive_header = false, const BodyCoding& coding = {});

}  // namespace loadtest
