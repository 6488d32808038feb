#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace httplib {
class Client;
}

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

/// A blocking HTTP/1.1 client over one keep-alive connection to 127.0.0.1:
/// cpp-httplib's, which behaves like curl (no Connection header, reconnects
/// when the server closed an idle connection). Paths go out as given, so a
/// test can send any query string.
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
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace testsupport
