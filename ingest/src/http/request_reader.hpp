#pragma once

#include <http_parser.h>

#include <cstddef>
#include <string>

#include "http/message.hpp"

namespace ingest::http {

/// Limits of one request; each breach is answered with the status named.
struct ReaderLimits {
  std::size_t max_request_line =
      std::size_t{8} * 1024;  ///< INGEST_MAX_REQUEST_LINE_BYTES: 414 beyond
  std::size_t max_header_bytes =
      std::size_t{16} * 1024;  ///< INGEST_MAX_HEADER_BYTES (all fields): 431 beyond
  std::size_t max_body_bytes = std::size_t{1024} * 1024;  ///< INGEST_MAX_BODY_BYTES: 413 beyond
};

/// Frames the requests of one connection strictly (RFC 9112), with
/// libhttp-parser for the grammar and its own checks where that parser is
/// lenient: a header section is read whole (never re-parsed per segment), a
/// bare LF, an obs-fold line, a space before a colon, a missing or repeated
/// Host in HTTP/1.1, two Content-Lengths, Content-Length with
/// Transfer-Encoding, or an encoding other than chunked are refused. One
/// request is taken at a time, so pipelined requests come out in order.
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
  RequestReader(const RequestReader&) = delete;
  RequestReader& operator=(const RequestReader&) = delete;

  /// Appends bytes as they arrive.
  void feed(const char* data, std::size_t size);
  /// The next request, an error, or kNeedMore. After kError the reader is
  /// spent: the connection must close.
  Result next();

  Phase phase() const;
  /// True once after the header section of a request that asked for
  /// "Expect: 100-continue" and whose body has not arrived: answer 100.
  bool take_continue();
  std::size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  static int on_url(http_parser* parser, const char* at, std::size_t length);
  static int on_header_field(http_parser* parser, const char* at, std::size_t length);
  static int on_header_value(http_parser* parser, const char* at, std::size_t length);
  static int on_headers_complete(http_parser* parser);
  static int on_body(http_parser* parser, const char* at, std::size_t length);
  static int on_message_complete(http_parser* parser);

  Result fail(int status, std::string message);
  // Checks the header section [start, end) (the request line, the fields,
  // not the final empty line) with the rules the parser is lenient about.
  Result check_header_section(std::size_t start, std::size_t end) const;
  void start_request();

  ReaderLimits limits_;
  http_parser_settings settings_{};
  http_parser parser_{};
  std::string buffer_;
  std::size_t consumed_ = 0;    // bytes of buffer_ given to finished requests
  std::size_t header_end_ = 0;  // end of the current header section, 0 if not found yet
  std::size_t scanned_ = 0;     // how far the search for the header end got
  bool in_body_ = false;        // the parser has the header section
  bool done_ = false;           // the current request is complete
  bool failed_ = false;
  bool continue_pending_ = false;
  Request request_;
  std::string field_;  // the header name being read
  bool reading_value_ = false;
  bool in_trailers_ = false;
  int error_status_ = 0;
  std::string error_message_;
};

}  // namespace ingest::http
