#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Client;
}

namespace testsupport {

/// One event of a Server-Sent Events stream.
struct SseEvent {
  std::string id;
  std::string type;
  std::string data;
};

/// A GET /subscribe client on its own thread (cpp-httplib's streaming
/// GET, parsed by the SSE rules of the WHATWG HTML standard), collecting
/// what arrives.
class SseClient {
 public:
  SseClient(std::uint16_t port, const std::string& path,
            const std::map<std::string, std::string>& headers = {});
  ~SseClient();  ///< stop()
  SseClient(const SseClient&) = delete;
  SseClient& operator=(const SseClient&) = delete;

  /// Waits until `count` events arrived (or the stream ended); true if they did.
  bool wait_for(std::size_t count, std::chrono::milliseconds timeout);
  /// Waits until the stream is over (ended by the server or cut).
  bool wait_closed(std::chrono::milliseconds timeout);
  /// Closes the connection (the client goes away).
  void stop();

  std::vector<SseEvent> events() const;
  int status() const;
  /// The raw body received, comments and all.
  std::string raw() const;
  /// True when the body ended with the chunked terminator (a clean end).
  bool ended_cleanly() const;
  std::string last_id() const;

 private:
  void feed(const char* data, std::size_t size);

  std::unique_ptr<httplib::Client> client_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string buffer_;
  std::string raw_;
  std::vector<SseEvent> events_;
  int status_ = 0;
  bool done_ = false;
  bool clean_ = false;
  std::thread thread_;
};

}  // namespace testsupport
