#include "http_client.hpp"

#include <httplib.h>

#include <cctype>

namespace testsupport {

HttpClient::HttpClient(std::uint16_t port, int timeout_ms)
    : client_(std::make_unique<httplib::Client>("127.0.0.1", port)) {
  const auto timeout = std::chrono::milliseconds(timeout_ms);
  client_->set_keep_alive(true);
  client_->set_url_encode(false);
  client_->set_connection_timeout(timeout);
  client_->set_read_timeout(timeout);
  client_->set_write_timeout(timeout);
}

HttpClient::~HttpClient() = default;

HttpResponse HttpClient::request(const std::string& method, const std::string& path,
                                 const std::string& body, const std::string& content_type,
                                 const std::map<std::string, std::string>& headers) {
  httplib::Request request;
  request.method = method;
  request.path = path;
  for (const auto& [name, value] : headers) request.set_header(name, value);
  if (!body.empty() || method == "POST" || method == "PUT") {
    request.body = body;
    if (!content_type.empty() && !request.has_header("Content-Type")) {
      request.set_header("Content-Type", content_type);
    }
  }
  httplib::Response answer;
  httplib::Error error = httplib::Error::Success;
  HttpResponse response;
  if (!client_->send(request, answer, error)) return response;  // status 0
  response.status = answer.status;
  response.body = std::move(answer.body);
  for (const auto& [name, value] : answer.headers) {
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    response.headers.emplace(std::move(lower), value);
  }
  return response;
}

}  // namespace testsupport
