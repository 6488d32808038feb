#include "sse_client.hpp"

#include <httplib.h>

namespace testsupport {

SseClient::SseClient(std::uint16_t port, const std::string& path,
                     const std::map<std::string, std::string>& headers)
    : client_(std::make_unique<httplib::Client>("127.0.0.1", port)) {
  client_->set_read_timeout(std::chrono::seconds(60));
  client_->set_url_encode(false);
  httplib::Headers request_headers;
  for (const auto& [name, value] : headers) request_headers.emplace(name, value);
  thread_ = std::thread([this, path, request_headers] {
    const httplib::Result result = client_->Get(
        path, request_headers,
        [this](const httplib::Response& response) {
          std::lock_guard<std::mutex> lock(mutex_);
          status_ = response.status;
          changed_.notify_all();
          return true;
        },
        [this](const char* data, std::size_t size) {
          feed(data, size);
          return true;
        });
    std::lock_guard<std::mutex> lock(mutex_);
    // A body that ended by its chunked terminator reads as success; a cut
    // connection as an error.
    clean_ = static_cast<bool>(result) && status_ == 200;
    if (result && status_ == 0) status_ = result->status;
    done_ = true;
    changed_.notify_all();
  });
}

SseClient::~SseClient() { stop(); }

void SseClient::stop() {
  client_->stop();
  if (thread_.joinable()) thread_.join();
}

void SseClient::feed(const char* data, std::size_t size) {
  std::lock_guard<std::mutex> lock(mutex_);
  raw_.append(data, size);
  buffer_.append(data, size);
  std::size_t end = 0;
  while ((end = buffer_.find("\n\n")) != std::string::npos) {
    const std::string block = buffer_.substr(0, end);
    buffer_.erase(0, end + 2);
    SseEvent event;
    event.type = "message";
    bool has_data = false;
    std::size_t start = 0;
    while (start <= block.size()) {
      std::size_t stop = block.find('\n', start);
      if (stop == std::string::npos) stop = block.size();
      const std::string line = block.substr(start, stop - start);
      start = stop + 1;
      if (line.empty() || line[0] == ':') continue;
      const std::size_t colon = line.find(':');
      const std::string field = line.substr(0, colon);
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      if (field == "id") event.id = value;
      if (field == "event") event.type = value;
      if (field == "data") {
        if (has_data) event.data += '\n';
        event.data += value;
        has_data = true;
      }
    }
    if (has_data) events_.push_back(event);
  }
  changed_.notify_all();
}

bool SseClient::wait_for(std::size_t count, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return events_.size() >= count || done_; }) &&
         events_.size() >= count;
}

bool SseClient::wait_closed(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return done_; });
}

std::vector<SseEvent> SseClient::events() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return events_;
}

int SseClient::status() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return status_;
}

std::string SseClient::raw() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return raw_;
}

bool SseClient::ended_cleanly() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return done_ && clean_;
}

std::string SseClient::last_id() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return events_.empty() ? std::string() : events_.back().id;
}

}  // namespace testsupport
