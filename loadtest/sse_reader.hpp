#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loadtest {

/// One event of a GET /subscribe stream, with the fields bench_subscribe checks.
struct SseEvent {
  std::string id;  ///< the SSE id: "<stream created>-<sequence>"
  std::string topic;
  std::string event_id;
};

/// The SSE id "<created>-<seq>" as two numbers (compared in that order);
/// false when it is not one.
bool parse_sse_id(std::string_view id, std::uint64_t& created, std::uint64_t& seq);

/// The client side of one GET /subscribe response, fed the bytes as they
/// come: the HTTP head, the body (chunked on HTTP/1.1, or up to the close),
/// and the Server-Sent Events in it ("id: ...\nevent: event\ndata: {...}\n\n",
/// "retry: N\n\n", ": ping\n\n"). The server writes "\n" line ends only.
class SseReader {
 public:
  /// Takes `size` bytes; appends each complete event to `events`. False on a
  /// protocol error (error() says what); a response other than 200 is not
  /// an error here: status() and error_body() tell it once complete().
  bool feed(const char* data, std::size_t size, std::vector<SseEvent>& events);

  bool head_done() const { return head_done_; }
  int status() const { return status_; }
  /// A non-200 answer was read whole, or a chunked stream got its last chunk.
  bool complete() const { return complete_; }
  const std::string& error() const { return error_; }
  const std::string& error_body() const { return error_body_; }
  std::uint64_t pings() const { return pings_; }
  std::uint64_t retry_fields() const { return retry_fields_; }
  std::uint64_t bytes() const { return bytes_; }

 private:
  bool read_head();
  bool read_chunks();
  void read_frames(std::vector<SseEvent>& events);
  void read_frame(std::string_view frame, std::vector<SseEvent>& events);
  bool fail(std::string what);

  std::string raw_;  ///< bytes not yet taken off
  std::size_t raw_pos_ = 0;
  std::string body_;  ///< the decoded body, SSE text
  std::size_t body_pos_ = 0;
  bool head_done_ = false;
  bool chunked_ = false;
  bool complete_ = false;
  int status_ = 0;
  std::size_t content_length_ = 0;  ///< of a non-200 answer
  std::size_t chunk_left_ = 0;      ///< bytes of the current chunk still to come
  bool chunk_crlf_ = false;         ///< the CRLF after a chunk's data is due
  std::string error_;
  std::string error_body_;
  std::uint64_t pings_ = 0;
  std::uint64_t retry_fields_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace loadtest
