#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http/message.hpp"

namespace ingest::http {

/// Limits of one request; each breach is answered with the status named.
struct ReaderLimits {
  std::size_t max_request_line =
      std::size_t{8} * 1024;  ///< INGEST_MAX_REQUEST_LINE_BYTES: 414 beyond
  std::size_t max_header_bytes =
      std::size_t{16} * 1024;  ///< INGEST_MAX_HEADER_BYTES (all fields, or all trailers): 431
  std::size_t max_body_bytes = std::size_t{1024} * 1024;  ///< INGEST_MAX_BODY_BYTES: 413 beyond
};

/// Frames the requests of one connection strictly (RFC 9112), the whole
/// message and not only its head: every line of the head, of the chunk
/// framing and of the trailers ends in CRLF; fields are `token ":" value`
/// without obs-fold or white space before the colon; HTTP/1.1 has exactly
/// one Host; Content-Length is one run of digits; Transfer-Encoding is
/// exactly `chunked` on HTTP/1.1 (501 for another coding, 400 when chunked
/// is not last, when it comes with Content-Length, or on HTTP/1.0); chunk
/// sizes are hex digits, extensions are tokens or quoted strings, and chunk
/// data is followed by CRLF. Whatever breaks a rule is an error after which
/// the connection must close. One request is taken at a time, so pipelined
/// requests come out in order and a request not yet taken stays as bytes.
/// Linear in the bytes fed, whatever their segmentation.
class RequestReader {
 public:
  /// What next() found.
  struct Result {
    enum class Kind {
      kNeedMore,  ///< not a whole request yet
      kRequest,   ///< `request` is complete
      kError,     ///< the bytes cannot be a request: answer `status`, then close
    };
    Kind kind = Kind::kNeedMore;
    Request request;
    int status = 0;
    std::string message;
  };

  /// Where the request being read is (for its timeouts).
  enum class Phase {
    kIdle,     ///< no byte of a next request yet
    kHeaders,  ///< reading the request line and header fields
    kBody,     ///< reading the body
  };

  explicit RequestReader(ReaderLimits limits);

  /// Appends bytes as they arrive.
  void feed(const char* data, std::size_t size);
  /// The next request, an error, or kNeedMore. After kError the reader is
  /// spent: the connection must close.
  Result next();

  Phase phase() const;
  /// True while the request being read asked for "Expect: 100-continue",
  /// its head is read and no byte of its body has come: a 100 may be sent.
  bool continue_wanted() const { return continue_wanted_; }
  /// The 100 went out (or will not): asked no more for this request.
  void continue_handled() { continue_wanted_ = false; }
  /// Bytes held: those not yet framed plus the body of the request being read.
  std::size_t buffered() const { return buffer_.size() - consumed_ + request_.body.size(); }
  /// Bytes received and not yet taken by a complete request.
  std::size_t unread() const { return buffer_.size() - consumed_; }
  /// True while next() has begun a request it could not finish: more input
  /// is needed for it. Bytes after a complete request that next() has not
  /// looked at yet (a pipelined request waiting its turn) do not count.
  bool in_request() const { return started_; }
  /// Gives back the buffer's spare capacity (an idle connection keeps none).
  void release_memory();

 private:
  enum class State { kHead, kBody, kChunkSize, kChunkData, kChunkDataEnd, kTrailers, kDone };

  Result fail(int status, std::string message);
  struct HeadFacts;
  Result read_head();
  Result parse_head(std::size_t start, std::size_t end);
  std::optional<Result> parse_request_line(std::string_view line);
  std::optional<Result> parse_fields(std::string_view head, std::size_t eol, HeadFacts* facts);
  std::optional<Result> apply_framing(const HeadFacts& facts);
  Result read_body();
  Result read_chunked();
  std::optional<Result> read_chunk_size();
  std::optional<Result> read_chunk_data();
  std::optional<Result> read_chunk_data_end();
  std::optional<Result> read_trailer();
  Result too_large();
  void compact();

  ReaderLimits limits_;
  std::string buffer_;
  std::size_t consumed_ = 0;  // bytes of buffer_ framed already
  std::size_t scanned_ = 0;   // how far the search for the end of a line got
  State state_ = State::kHead;
  bool failed_ = false;
  bool continue_wanted_ = false;
  bool started_ = false;  // a byte of the current request has arrived
  Request request_;
  std::uint64_t body_left_ = 0;    // Content-Length or chunk bytes still to come
  std::size_t trailer_bytes_ = 0;  // trailer section so far
};

}  // namespace ingest::http
