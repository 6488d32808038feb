#include "http/request_reader.hpp"
#include "http/tokens.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <string_view>

namespace ingest::http {
namespace {

// Input buffers keep at most this much spare capacity while idle.
constexpr std::size_t kKeptCapacity = std::size_t{16} * 1024;
// The methods of RFC 9110 and PATCH; anything else is 501.
constexpr std::array<std::string_view, 9> kMethods = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};

char lower_char(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = lower_char(c);
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// The comma-separated elements of a list field, trimmed and lowered; empty
// elements are skipped (RFC 9110 §5.6.1).
std::vector<std::string> list_elements(std::string_view value) {
  std::vector<std::string> out;
  while (true) {
    const std::size_t comma = value.find(',');
    const std::string_view element = trim(value.substr(0, comma));
    if (!element.empty()) out.push_back(lower(element));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return out;
}

bool has_token(std::string_view value, std::string_view token) {
  for (const std::string& element : list_elements(value)) {
    if (element == token) return true;
  }
  return false;
}

}  // namespace

RequestReader::RequestReader(ReaderLimits limits) : limits_(limits) {}

void RequestReader::feed(const char* data, std::size_t size) {
  if (size == 0) return;
  if (!started_ && unread() == 0) request_.received = std::chrono::steady_clock::now();
  buffer_.append(data, size);
}

RequestReader::Phase RequestReader::phase() const {
  if (!started_) return Phase::kIdle;
  return state_ == State::kHead ? Phase::kHeaders : Phase::kBody;
}

void RequestReader::release_memory() {
  compact();
  if (buffer_.empty() && buffer_.capacity() > kKeptCapacity) std::string().swap(buffer_);
}

void RequestReader::compact() {
  if (consumed_ == 0) return;
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
  } else {
    buffer_.erase(0, consumed_);
  }
  scanned_ -= std::min(scanned_, consumed_);
  consumed_ = 0;
}

RequestReader::Result RequestReader::fail(int status, std::string message) {
  failed_ = true;
  continue_wanted_ = false;
  Result result;
  result.kind = Result::Kind::kError;
  result.status = status;
  result.message = std::move(message);
  return result;
}

RequestReader::Result RequestReader::next() {
  if (failed_) return fail(400, "connection already failed");
  // Framed bytes are dropped once they are a good part of the buffer, so it
  // holds about one request however many pass through.
  if (consumed_ > 0 && (consumed_ >= buffer_.size() / 2 || consumed_ >= kKeptCapacity)) compact();
  if (state_ == State::kDone) {
    state_ = State::kHead;
    request_ = Request{};
    request_.received = std::chrono::steady_clock::now();
  }
  if (state_ == State::kHead) {
    Result head = read_head();
    if (head.kind != Result::Kind::kRequest) return head;
  }
  Result body = state_ == State::kBody ? read_body() : read_chunked();
  if (body.kind != Result::Kind::kRequest) return body;
  state_ = State::kDone;
  started_ = false;
  continue_wanted_ = false;
  Result result;
  result.kind = Result::Kind::kRequest;
  result.request = std::move(request_);
  request_ = Request{};
  if (unread() == 0) compact();
  return result;
}

// Finds the end of the head (CRLF CRLF), checking that each line ends in
// CRLF and the head stays in its limits; then parses it. kRequest means the
// head is read (the body follows).
RequestReader::Result RequestReader::read_head() {
  if (!started_) {
    if (unread() == 0) return Result{};
    started_ = true;
    scanned_ = consumed_;
  }
  // Empty lines before a request line are ignored (RFC 9112 §2.2).
  if (scanned_ == consumed_) {
    while (unread() >= 2 && buffer_[consumed_] == '\r' && buffer_[consumed_ + 1] == '\n') {
      consumed_ += 2;
    }
    scanned_ = consumed_;
    if (unread() == 0 || (unread() == 1 && buffer_[consumed_] == '\r')) return Result{};
  }
  const std::size_t start = consumed_;
  std::size_t end = std::string::npos;
  std::size_t line_end = std::string::npos;  // of the request line
  for (std::size_t i = std::max(scanned_, start); i < buffer_.size(); ++i) {
    if (buffer_[i] != '\n') continue;
    if (i == start || buffer_[i - 1] != '\r') return fail(400, "line not ended by CRLF");
    if (i >= start + 3 && buffer_[i - 2] == '\n' && buffer_[i - 3] == '\r') {
      end = i + 1;
      break;
    }
  }
  scanned_ = end == std::string::npos ? buffer_.size() : end;
  const std::size_t seen = scanned_ - start;
  line_end = buffer_.find("\r\n", start);
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
  Result parsed = parse_head(start, end - 2);
  if (parsed.kind == Result::Kind::kError) return parsed;
  consumed_ = end;
  Result ok;
  ok.kind = Result::Kind::kRequest;
  return ok;
}

// What the field lines say about the framing (views into the buffer).
struct RequestReader::HeadFacts {
  std::size_t hosts = 0;
  std::size_t lengths = 0;
  std::size_t encodings = 0;
  std::string_view length_value;
  std::string_view encoding_value;
  std::string_view connection_value;
  std::string_view expect_value;
};

// The head [start, end): the request line and the field lines, each ending
// in CRLF (end is just after the last one's).
RequestReader::Result RequestReader::parse_head(std::size_t start, std::size_t end) {
  const std::string_view head(buffer_.data() + start, end - start);
  const std::size_t eol = head.find("\r\n");
  if (auto error = parse_request_line(head.substr(0, eol))) return std::move(*error);
  HeadFacts facts;
  if (auto error = parse_fields(head, eol, &facts)) return std::move(*error);
  if (auto error = apply_framing(facts)) return std::move(*error);
  return Result{};
}

// method SP request-target SP HTTP-version, one space each, ASCII only.
std::optional<RequestReader::Result> RequestReader::parse_request_line(std::string_view line) {
  for (const char c : line) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 && c != ' ') return fail(400, "control character in the request line");
    if (u >= 0x7f) return fail(400, "byte outside ASCII in the request line");
  }
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return fail(400, "malformed request line (method, target and version, one space apart)");
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) return fail(400, "malformed method");
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return fail(400, "malformed HTTP version");
  }
  if (version[5] != '1' || version[7] > '1') {
    return fail(505, "only HTTP/1.0 and HTTP/1.1 are served");
  }
  if (std::find(kMethods.begin(), kMethods.end(), method) == kMethods.end()) {
    return fail(501, "unknown method");
  }
  if (target.empty() || target[0] != '/') {
    return fail(400, "the request target must be a path (origin-form)");
  }
  request_.method = std::string(method);
  request_.version_minor = version[7] - '0';
  const std::size_t question = target.find('?');
  request_.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) request_.query = std::string(target.substr(question + 1));
  return std::nullopt;
}

// The field lines after the request line (which ends at `eol`).
std::optional<RequestReader::Result> RequestReader::parse_fields(std::string_view head,
                                                                 std::size_t eol,
                                                                 HeadFacts* facts) {
  while (eol != std::string_view::npos && eol + 2 < head.size()) {
    const std::size_t from = eol + 2;
    eol = head.find("\r\n", from);
    const std::string_view field =
        head.substr(from, eol == std::string_view::npos ? eol : eol - from);
    if (field.front() == ' ' || field.front() == '\t') {
      return fail(400, "obsolete line folding in a header");
    }
    std::size_t i = 0;
    while (i < field.size() && is_tchar(field[i])) ++i;
    if (i == 0 || i >= field.size() || field[i] != ':') {
      return fail(400, "malformed header field (a name of token characters, then a colon)");
    }
    const std::string_view raw_value = field.substr(i + 1);
    for (const char c : raw_value) {
      if (!is_field_char(static_cast<unsigned char>(c))) {
        return fail(400, "control character in a header value");
      }
    }
    std::string name = lower(field.substr(0, i));
    const std::string_view value = trim(raw_value);
    if (name == "host") ++facts->hosts;
    if (name == "content-length") {
      ++facts->lengths;
      facts->length_value = value;
    }
    if (name == "transfer-encoding") {
      ++facts->encodings;
      facts->encoding_value = value;
    }
    if (name == "connection") facts->connection_value = value;
    if (name == "expect") facts->expect_value = value;
    request_.headers.emplace_back(std::move(name), std::string(value));
  }
  return std::nullopt;
}

// Host, the body's framing (Content-Length or chunked, RFC 9112 §6), the
// connection's persistence and Expect, from what the fields said.
std::optional<RequestReader::Result> RequestReader::apply_framing(const HeadFacts& facts) {
  Request& request = request_;
  if (request.version_minor == 1 && facts.hosts != 1) {
    return fail(400, "an HTTP/1.1 request needs exactly one Host header");
  }
  if (request.version_minor == 0 && facts.hosts > 1) return fail(400, "more than one Host header");
  if (facts.lengths > 1) return fail(400, "more than one Content-Length");
  if (facts.encodings > 1) return fail(400, "more than one Transfer-Encoding header");
  if (facts.lengths > 0 && facts.encodings > 0) {
    return fail(400, "conflicting Content-Length / Transfer-Encoding");
  }
  request.keep_alive = request.version_minor == 1 ? !has_token(facts.connection_value, "close")
                                                  : has_token(facts.connection_value, "keep-alive");
  const bool chunked = facts.encodings > 0;
  if (chunked) {
    // RFC 9112 §6.1: on HTTP/1.0 the framing is faulty; chunked must be the
    // final coding, once; this server implements no other coding.
    if (request.version_minor == 0) {
      return fail(400, "Transfer-Encoding in an HTTP/1.0 request (faulty framing)");
    }
    const std::vector<std::string> codings = list_elements(facts.encoding_value);
    for (const std::string& coding : codings) {
      if (coding != "chunked") {
        return fail(501, "Transfer-Encoding " + coding + " is not implemented (only chunked)");
      }
    }
    if (codings.size() != 1) {
      return fail(400, "invalid Transfer-Encoding (chunked, once and last, is required)");
    }
  }
  body_left_ = 0;
  if (facts.lengths == 1) {
    const std::string_view length = facts.length_value;
    if (length.empty() || length.size() > 19 ||
        !std::all_of(length.begin(), length.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return fail(400, "invalid Content-Length");
    }
    body_left_ = std::stoull(std::string(length));
    if (body_left_ > limits_.max_body_bytes) return too_large();
  }
  if (!facts.expect_value.empty() && lower(facts.expect_value) != "100-continue") {
    return fail(417, "only Expect: 100-continue is understood");
  }
  const bool has_body = chunked || body_left_ > 0;
  continue_wanted_ = !facts.expect_value.empty() && has_body && request.version_minor == 1;
  if (body_left_ > 0) request.body.reserve(static_cast<std::size_t>(body_left_));
  state_ = chunked ? State::kChunkSize : State::kBody;
  trailer_bytes_ = 0;
  return std::nullopt;
}

}  // namespace ingest::http
