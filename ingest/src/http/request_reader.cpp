#include "http/request_reader.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>

namespace ingest::http {
namespace {

// RFC 9110 §5.6.2: tchar.
bool is_tchar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c)) != 0) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return std::string(text.substr(first, last - first + 1));
}

RequestReader* reader_of(http_parser* parser) { return static_cast<RequestReader*>(parser->data); }

}  // namespace

RequestReader::RequestReader(ReaderLimits limits) : limits_(limits) {
  settings_.on_url = &RequestReader::on_url;
  settings_.on_header_field = &RequestReader::on_header_field;
  settings_.on_header_value = &RequestReader::on_header_value;
  settings_.on_headers_complete = &RequestReader::on_headers_complete;
  settings_.on_body = &RequestReader::on_body;
  settings_.on_message_complete = &RequestReader::on_message_complete;
  start_request();
}

void RequestReader::start_request() {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  request_ = Request{};
  field_.clear();
  reading_value_ = false;
  in_trailers_ = false;
  in_body_ = false;
  done_ = false;
  header_end_ = 0;
  scanned_ = consumed_;
  continue_pending_ = false;
  if (buffered() > 0) request_.received = std::chrono::steady_clock::now();  // pipelined
}

void RequestReader::feed(const char* data, std::size_t size) {
  if (buffered() == 0 && consumed_ > 0) {
    buffer_.clear();
    scanned_ -= std::min(scanned_, consumed_);
    header_end_ = 0;
    consumed_ = 0;
  }
  if (buffered() == 0 && size > 0 && !in_body_) {
    request_.received = std::chrono::steady_clock::now();
  }
  buffer_.append(data, size);
}

RequestReader::Phase RequestReader::phase() const {
  if (in_body_) return Phase::kBody;
  return buffered() == 0 ? Phase::kIdle : Phase::kHeaders;
}

bool RequestReader::take_continue() {
  const bool pending = continue_pending_;
  continue_pending_ = false;
  return pending;
}

RequestReader::Result RequestReader::fail(int status, std::string message) {
  failed_ = true;
  Result result;
  result.kind = Result::Kind::kError;
  result.status = status;
  result.message = std::move(message);
  return result;
}

RequestReader::Result RequestReader::check_header_section(std::size_t start,
                                                          std::size_t end) const {
  // Line by line: every line ends in CRLF (a bare LF is refused), the
  // fields are `token ":" value` with no white space before the colon, and
  // no line continues the previous one (obs-fold).
  std::size_t line = start;
  bool first = true;
  while (line < end) {
    std::size_t eol = buffer_.find('\n', line);
    if (eol == std::string::npos || eol > end) eol = end;
    if (eol == line || buffer_[eol - 1] != '\r') {
      return Result{Result::Kind::kError, {}, 400, "line not ended by CRLF"};
    }
    const std::size_t text_end = eol - 1;
    if (first) {
      first = false;
      for (std::size_t i = line; i < text_end; ++i) {
        const auto c = static_cast<unsigned char>(buffer_[i]);
        if (c < 0x21 && c != ' ') {
          return Result{Result::Kind::kError, {}, 400, "control character in the request line"};
        }
      }
    } else {
      const char lead = buffer_[line];
      if (lead == ' ' || lead == '\t') {
        return Result{Result::Kind::kError, {}, 400, "obsolete line folding in a header"};
      }
      std::size_t i = line;
      while (i < text_end && is_tchar(buffer_[i])) ++i;
      if (i == line || i >= text_end || buffer_[i] != ':') {
        return Result{Result::Kind::kError,
                      {},
                      400,
                      "malformed header field (a name of token characters, then a colon)"};
      }
      for (std::size_t v = i + 1; v < text_end; ++v) {
        const auto c = static_cast<unsigned char>(buffer_[v]);
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
          return Result{Result::Kind::kError, {}, 400, "control character in a header value"};
        }
      }
    }
    line = eol + 1;
  }
  return Result{};
}

RequestReader::Result RequestReader::next() {
  if (failed_) return fail(400, "connection already failed");
  if (done_) start_request();
  if (!in_body_) {
    // Empty lines before a request line are ignored (RFC 9112 §2.2).
    while (buffer_.size() - consumed_ >= 2 && buffer_[consumed_] == '\r' &&
           buffer_[consumed_ + 1] == '\n') {
      consumed_ += 2;
    }
    scanned_ = std::max(scanned_, consumed_);
    if (buffered() == 0) return Result{};
    // Find the end of the header section, scanning each byte once.
    const std::size_t start = consumed_;
    const std::size_t from = std::max(scanned_, start);
    std::size_t end = std::string::npos;
    for (std::size_t i = from; i < buffer_.size(); ++i) {
      if (buffer_[i] != '\n') continue;
      if (i == start || buffer_[i - 1] != '\r') return fail(400, "line not ended by CRLF");
      if (i >= start + 3 && buffer_[i - 2] == '\n' && buffer_[i - 3] == '\r') {
        end = i + 1;
        break;
      }
    }
    scanned_ = end == std::string::npos ? buffer_.size() : end;
    const std::size_t seen = (end == std::string::npos ? buffer_.size() : end) - start;
    // The request line alone may not be longer than its limit.
    const std::size_t line_end = buffer_.find("\r\n", start);
    const std::size_t line_length =
        (line_end == std::string::npos || line_end >= start + seen) ? seen : line_end - start;
    if (line_length > limits_.max_request_line) {
      return fail(414, "request line longer than INGEST_MAX_REQUEST_LINE_BYTES (" +
                           std::to_string(limits_.max_request_line) + " bytes)");
    }
    if (seen > limits_.max_request_line + limits_.max_header_bytes) {
      return fail(431, "header fields larger than INGEST_MAX_HEADER_BYTES (" +
                           std::to_string(limits_.max_header_bytes) + " bytes)");
    }
    if (end == std::string::npos) return Result{};
    Result checked = check_header_section(start, end - 2);
    if (checked.kind == Result::Kind::kError) return fail(checked.status, checked.message);
    header_end_ = end;
  }

  // Give the parser what it has not seen: the header section once, then
  // body bytes as they come.
  const std::size_t offset = consumed_;
  const std::size_t available = buffer_.size() - offset;
  const std::size_t parsed =
      http_parser_execute(&parser_, &settings_, buffer_.data() + offset, available);
  consumed_ += parsed;
  const auto error = static_cast<http_errno>(parser_.http_errno);
  if (error_status_ != 0) return fail(error_status_, error_message_);
  if (error != HPE_OK && error != HPE_PAUSED) {
    switch (error) {
      case HPE_INVALID_CONTENT_LENGTH:
      case HPE_UNEXPECTED_CONTENT_LENGTH:
        return fail(400, "invalid or conflicting Content-Length");
      case HPE_INVALID_TRANSFER_ENCODING:
        return fail(400, "invalid Transfer-Encoding (only chunked, last, is accepted)");
      case HPE_INVALID_METHOD:
        return fail(501, "unknown method");
      case HPE_INVALID_VERSION:
        return fail(505, "only HTTP/1.0 and HTTP/1.1 are served");
      default:
        return fail(400, std::string("malformed request: ") + http_errno_description(error));
    }
  }
  if (!done_) return Result{};
  // One request complete: the parser paused there, the rest waits.
  http_parser_pause(&parser_, 0);
  Result result;
  result.kind = Result::Kind::kRequest;
  result.request = std::move(request_);
  if (buffered() == 0) {
    buffer_.clear();
    consumed_ = 0;
  }
  return result;
}

int RequestReader::on_url(http_parser* parser, const char* at, std::size_t length) {
  reader_of(parser)->request_.path.append(at, length);  // split into path and query later
  return 0;
}

int RequestReader::on_header_field(http_parser* parser, const char* at, std::size_t length) {
  RequestReader* self = reader_of(parser);
  if (self->in_trailers_) return 0;
  if (self->reading_value_ || self->field_.empty()) {
    if (self->reading_value_) self->reading_value_ = false;
    self->field_.clear();
  }
  self->field_.append(at, length);
  return 0;
}

int RequestReader::on_header_value(http_parser* parser, const char* at, std::size_t length) {
  RequestReader* self = reader_of(parser);
  if (self->in_trailers_) return 0;
  if (!self->reading_value_) {
    self->reading_value_ = true;
    self->request_.headers.emplace_back(lower(self->field_), std::string());
  }
  self->request_.headers.back().second.append(at, length);
  return 0;
}

int RequestReader::on_headers_complete(http_parser* parser) {
  RequestReader* self = reader_of(parser);
  Request& request = self->request_;
  for (auto& header : request.headers) header.second = trim(header.second);
  request.method = http_method_str(static_cast<http_method>(parser->method));
  if (parser->http_major != 1 || parser->http_minor > 1) {
    self->error_status_ = 505;
    self->error_message_ = "only HTTP/1.0 and HTTP/1.1 are served";
    return -1;
  }
  request.version_minor = parser->http_minor;
  request.keep_alive = http_should_keep_alive(parser) != 0;
  // The target: origin-form only, split into path and query.
  std::string target = std::move(request.path);
  if (target.empty() || target[0] != '/') {
    self->error_status_ = 400;
    self->error_message_ = "the request target must be a path (origin-form)";
    return -1;
  }
  const std::size_t question = target.find('?');
  request.path = target.substr(0, question);
  if (question != std::string::npos) request.query = target.substr(question + 1);

  std::size_t hosts = 0;
  std::size_t lengths = 0;
  std::size_t encodings = 0;
  for (const auto& [name, value] : request.headers) {
    if (name == "host") ++hosts;
    if (name == "content-length") ++lengths;
    if (name == "transfer-encoding") ++encodings;
  }
  if (request.version_minor == 1 && hosts != 1) {
    self->error_status_ = 400;
    self->error_message_ = "an HTTP/1.1 request needs exactly one Host header";
    return -1;
  }
  if (lengths > 1 || (lengths > 0 && encodings > 0)) {
    self->error_status_ = 400;
    self->error_message_ = "conflicting Content-Length / Transfer-Encoding";
    return -1;
  }
  if (encodings > 0 && (parser->flags & F_CHUNKED) == 0) {
    self->error_status_ = 501;
    self->error_message_ = "Transfer-Encoding other than chunked is not implemented";
    return -1;
  }
  if (encodings > 1) {
    self->error_status_ = 400;
    self->error_message_ = "more than one Transfer-Encoding header";
    return -1;
  }
  if (lengths == 1 && parser->content_length > self->limits_.max_body_bytes) {
    self->error_status_ = 413;
    self->error_message_ = "request body larger than INGEST_MAX_BODY_BYTES (" +
                           std::to_string(self->limits_.max_body_bytes) + " bytes)";
    return -1;
  }
  const std::string expect = lower(std::string(request.header("expect")));
  if (!expect.empty() && expect != "100-continue") {
    self->error_status_ = 417;
    self->error_message_ = "only Expect: 100-continue is understood";
    return -1;
  }
  const bool has_body = (parser->flags & F_CHUNKED) != 0 || parser->content_length > 0;
  self->continue_pending_ = expect == "100-continue" && has_body && request.version_minor == 1;
  self->in_body_ = true;
  self->in_trailers_ = true;  // field callbacks after this are trailers: ignored
  if (has_body && lengths == 1) request.body.reserve(parser->content_length);
  return 0;
}

int RequestReader::on_body(http_parser* parser, const char* at, std::size_t length) {
  RequestReader* self = reader_of(parser);
  self->continue_pending_ = false;  // the client did not wait for it
  if (self->request_.body.size() + length > self->limits_.max_body_bytes) {
    self->error_status_ = 413;
    self->error_message_ = "request body larger than INGEST_MAX_BODY_BYTES (" +
                           std::to_string(self->limits_.max_body_bytes) + " bytes)";
    return -1;
  }
  self->request_.body.append(at, length);
  return 0;
}

int RequestReader::on_message_complete(http_parser* parser) {
  RequestReader* self = reader_of(parser);
  self->done_ = true;
  self->continue_pending_ = false;
  http_parser_pause(parser, 1);  // one request at a time
  return 0;
}

}  // namespace ingest::http
