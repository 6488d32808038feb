#include "http.hpp"

#include <httplib.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace loadtest {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

int read_response_head(std::string_view head, const HeaderField& field, std::string* error) {
  std::size_t line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  if (status_line.substr(0, 7) != "HTTP/1." || status_line.size() < 12) {
    *error = "not an HTTP/1.x status line: " + std::string(status_line.substr(0, 80));
    return 0;
  }
  while (line_end != std::string_view::npos && line_end < head.size()) {
    const std::size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    const std::string_view line = head.substr(start, line_end - start);
    const auto colon = line.find(':');
    if (colon != std::string_view::npos) field(line.substr(0, colon), trim(line.substr(colon + 1)));
  }
  return static_cast<int>(std::strtol(std::string(status_line.substr(9, 3)).c_str(), nullptr, 10));
}

ParseResult take_response(std::string& buffer, HttpResponse& out, std::string* error) {
  const std::size_t header_end = buffer.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    if (buffer.size() > std::size_t{64} * 1024) {
      *error = "response headers over 64 KiB";
      return ParseResult::kError;
    }
    return ParseResult::kIncomplete;
  }
  HttpResponse response;
  response.close = buffer.compare(0, 8, "HTTP/1.0") == 0;
  std::size_t content_length = 0;
  std::string unsupported;
  response.status = read_response_head(
      std::string_view(buffer).substr(0, header_end),
      [&](std::string_view name, std::string_view value) {
        if (iequals(name, "content-length")) {
          content_length = std::strtoul(std::string(value).c_str(), nullptr, 10);
        } else if (iequals(name, "connection")) {
          response.close = iequals(value, "close");
        } else if (iequals(name, "retry-after")) {
          response.retry_after = std::string(value);
        } else if (iequals(name, "transfer-encoding") && !iequals(value, "identity")) {
          unsupported = "unsupported Transfer-Encoding: " + std::string(value);
        }
      },
      error);
  if (response.status == 0) return ParseResult::kError;
  if (!unsupported.empty()) {
    *error = unsupported;
    return ParseResult::kError;
  }
  const std::size_t body_start = header_end + 4;
  if (buffer.size() < body_start + content_length) return ParseResult::kIncomplete;
  response.body = buffer.substr(body_start, content_length);
  buffer.erase(0, body_start + content_length);
  out = std::move(response);
  return ParseResult::kComplete;
}

std::uint16_t loopback_port(const std::string& url) {
  std::string rest;
  for (const char* prefix : {"http://127.0.0.1:", "http://localhost:"}) {
    if (url.rfind(prefix, 0) == 0) rest = url.substr(std::strlen(prefix));
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  char* end = nullptr;
  const long port = rest.empty() ? 0 : std::strtol(rest.c_str(), &end, 10);
  if (port <= 0 || port > 65535 || *end != '\0') {
    throw std::invalid_argument(
        "--url must be http://127.0.0.1:PORT or http://localhost:PORT (got '" + url +
        "'): load goes only to this machine");
  }
  return static_cast<std::uint16_t>(port);
}

int connect_loopback(std::uint16_t port, bool nonblocking, int rcvbuf) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // A loopback connect completes (or is refused) at once: no need to make it
  // asynchronous.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  if (nonblocking) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

std::string request_head(const std::string& method, const std::string& path, std::uint16_t port,
                         const std::string& authorization, std::size_t content_length,
                         bool keep_alive_header, const BodyCoding& coding) {
  // Like curl, wrk, Go and k6: HTTP/1.1 keeps the connection by default, so
  // no Connection header unless asked for (to compare with clients that send
  // one).
  std::string head =
      method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n";
  if (keep_alive_header) head += "Connection: keep-alive\r\n";
  if (!authorization.empty()) head += "Authorization: " + authorization + "\r\n";
  if (method == "POST") {
    head += std::string("Content-Type: ") + coding.content_type() + "\r\n";
    if (coding.gzip) head += std::string("Content-Encoding: ") + coding.content_encoding() + "\r\n";
    head += "Content-Length: " + std::to_string(content_length) + "\r\n";
  }
  head += "\r\n";
  return head;
}

BlockingClient::BlockingClient(std::uint16_t port, std::string authorization, int timeout_ms)
    : client_(std::make_unique<httplib::Client>("127.0.0.1", port)),
      authorization_(std::move(authorization)) {
  const auto timeout = std::chrono::milliseconds(timeout_ms);
  client_->set_keep_alive(true);
  client_->set_connection_timeout(timeout);
  client_->set_read_timeout(timeout);
  client_->set_write_timeout(timeout);
}

BlockingClient::~BlockingClient() = default;

HttpResponse BlockingClient::get(const std::string& path) {
  httplib::Headers headers;
  if (!authorization_.empty()) headers.emplace("Authorization", authorization_);
  const httplib::Result result = client_->Get(path, headers);
  HttpResponse response;
  if (!result) return response;  // status 0
  response.status = result->status;
  response.body = result->body;
  response.retry_after = result->get_header_value("Retry-After");
  response.close = result->get_header_value("Connection") == "close";
  return response;
}

}  // namespace loadtest
