#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace testsupport {

struct HttpResponse {
  int status = 0;  ///< 0 when no answer came (connection refused, closed, timed out)
  std::map<std::string, std::string> headers;  ///< names in lower case
  std::string body;

  /// A header's value ("" when absent); `name` in lower case.
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

/// A minimal blocking HTTP/1.1 client over one keep-alive connection to
/// 127.0.0.1. Reconnects once when the server closed an idle connection.
class HttpClient {
 public:
  explicit HttpClient(std::uint16_t port, int timeout_ms = 30000);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpResponse request(const std::string& method, const std::string& path,
                       const std::string& body = "",
                       const std::string& content_type = "application/json",
                       const std::map<std::string, std::string>& headers = {});
  HttpResponse get(const std::string& path) { return request("GET", path); }
  HttpResponse post(const std::string& path, const std::string& body) {
    return request("POST", path, body);
  }

 private:
  bool connect_socket();
  void close_socket();
  bool send_all(const std::string& data) const;
  bool read_response(HttpResponse& response);

  std::uint16_t port_;
  int timeout_ms_;
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace testsupport
