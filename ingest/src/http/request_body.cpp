// The body of a request: Content-Length, or chunked framing read strictly
// (RFC 9112 §7.1): hex sizes, extensions of tokens or quoted strings, CRLF
// after the data and after every line, trailers checked and dropped.
#include <algorithm>
#include <optional>
#include <string_view>

#include "http/request_reader.hpp"
#include "http/tokens.hpp"

namespace ingest::http {
namespace {

// A chunk-size line (size and extensions) longer than this is refused: no
// client needs more, and the line is buffered until its end arrives.
constexpr std::size_t kMaxChunkLine = 4096;

// chunk-ext (RFC 9112 §7.1.1): *( BWS ";" BWS name [ BWS "=" BWS value ] ),
// name a token, value a token or a quoted-string.
bool valid_chunk_extensions(std::string_view ext) {
  std::size_t i = 0;
  const auto skip_ws = [&] {
    while (i < ext.size() && (ext[i] == ' ' || ext[i] == '\t')) ++i;
  };
  const auto token = [&] {
    const std::size_t start = i;
    while (i < ext.size() && is_tchar(ext[i])) ++i;
    return i > start;
  };
  while (true) {
    skip_ws();
    if (i == ext.size()) return true;
    if (ext[i] != ';') return false;
    ++i;
    skip_ws();
    if (!token()) return false;
    skip_ws();
    if (i == ext.size() || ext[i] != '=') continue;
    ++i;
    skip_ws();
    if (i < ext.size() && ext[i] == '"') {
      ++i;
      bool closed = false;
      while (i < ext.size()) {
        const auto c = static_cast<unsigned char>(ext[i]);
        if (c == '"') {
          closed = true;
          ++i;
          break;
        }
        if (c == '\\') {
          if (i + 1 >= ext.size() || !is_field_char(static_cast<unsigned char>(ext[i + 1]))) {
            return false;
          }
          i += 2;
          continue;
        }
        if (!is_field_char(c)) return false;
        ++i;
      }
      if (!closed) return false;
    } else if (!token()) {
      return false;
    }
  }
}

}  // namespace

RequestReader::Result RequestReader::read_body() {
  const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, unread()));
  if (take > 0) {
    continue_wanted_ = false;  // the client did not wait for it
    request_.body.append(buffer_, consumed_, take);
    consumed_ += take;
    body_left_ -= take;
  }
  if (body_left_ > 0) return Result{};
  Result done;
  done.kind = Result::Kind::kRequest;
  return done;
}

// RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF;
// last-chunk = 1*"0" [ chunk-ext ] CRLF; then trailer lines and CRLF. Each
// step returns nullopt to go on, or the result to give.
RequestReader::Result RequestReader::read_chunked() {
  while (true) {
    std::optional<Result> step;
    switch (state_) {
      case State::kChunkSize:
        step = read_chunk_size();
        break;
      case State::kChunkData:
        step = read_chunk_data();
        break;
      case State::kChunkDataEnd:
        step = read_chunk_data_end();
        break;
      case State::kTrailers:
        step = read_trailer();
        break;
      case State::kHead:
      case State::kBody:
      case State::kDone:
        return fail(400, "internal: chunk state");
    }
    if (step) return std::move(*step);
  }
}

std::optional<RequestReader::Result> RequestReader::read_chunk_size() {
  const std::size_t lf = buffer_.find('\n', consumed_);
  if (lf == std::string::npos) {
    if (unread() > kMaxChunkLine) return fail(400, "chunk size line too long");
    return Result{};
  }
  if (lf - consumed_ > kMaxChunkLine) return fail(400, "chunk size line too long");
  continue_wanted_ = false;
  if (lf == consumed_ || buffer_[lf - 1] != '\r') {
    return fail(400, "chunk size line not ended by CRLF");
  }
  const std::string_view line(buffer_.data() + consumed_, lf - 1 - consumed_);
  if (line.find('\r') != std::string_view::npos) return fail(400, "bare CR in chunk framing");
  std::size_t digits = 0;
  std::uint64_t size = 0;
  while (digits < line.size()) {
    const int value = hex_value(line[digits]);
    if (value < 0) break;
    if (size > (std::uint64_t{1} << 59)) return too_large();
    size = size * 16 + static_cast<std::uint64_t>(value);
    ++digits;
  }
  if (digits == 0) return fail(400, "invalid chunk size");
  if (!valid_chunk_extensions(line.substr(digits))) return fail(400, "invalid chunk extension");
  if (request_.body.size() + size > limits_.max_body_bytes) return too_large();
  consumed_ = lf + 1;
  body_left_ = size;
  state_ = size == 0 ? State::kTrailers : State::kChunkData;
  return std::nullopt;
}

std::optional<RequestReader::Result> RequestReader::read_chunk_data() {
  const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, unread()));
  if (take == 0) return Result{};
  request_.body.append(buffer_, consumed_, take);
  consumed_ += take;
  body_left_ -= take;
  if (body_left_ == 0) state_ = State::kChunkDataEnd;
  return std::nullopt;
}

std::optional<RequestReader::Result> RequestReader::read_chunk_data_end() {
  if (unread() < 2) {
    if (unread() == 1 && buffer_[consumed_] != '\r') {
      return fail(400, "chunk data not followed by CRLF");
    }
    return Result{};
  }
  if (buffer_[consumed_] != '\r' || buffer_[consumed_ + 1] != '\n') {
    return fail(400, "chunk data not followed by CRLF");
  }
  consumed_ += 2;
  state_ = State::kChunkSize;
  return std::nullopt;
}

std::optional<RequestReader::Result> RequestReader::read_trailer() {
  const auto trailers_too_large = [&] {
    return fail(431, "trailer fields larger than INGEST_MAX_HEADER_BYTES (" +
                         std::to_string(limits_.max_header_bytes) + " bytes)");
  };
  const std::size_t lf = buffer_.find('\n', consumed_);
  if (lf == std::string::npos) {
    if (trailer_bytes_ + unread() > limits_.max_header_bytes) return trailers_too_large();
    return Result{};
  }
  if (lf == consumed_ || buffer_[lf - 1] != '\r')
    return fail(400, "trailer line not ended by CRLF");
  const std::string_view line(buffer_.data() + consumed_, lf - 1 - consumed_);
  trailer_bytes_ += line.size() + 2;
  if (trailer_bytes_ > limits_.max_header_bytes) return trailers_too_large();
  consumed_ = lf + 1;
  if (line.empty()) {
    Result done;
    done.kind = Result::Kind::kRequest;
    return done;
  }
  // A trailer field is checked like a header field, then dropped.
  std::size_t i = 0;
  while (i < line.size() && is_tchar(line[i])) ++i;
  if (i == 0 || i >= line.size() || line[i] != ':') return fail(400, "malformed trailer field");
  for (const char c : line.substr(i + 1)) {
    if (!is_field_char(static_cast<unsigned char>(c))) {
      return fail(400, "control character in a trailer field");
    }
  }
  return std::nullopt;
}

RequestReader::Result RequestReader::too_large() {
  return fail(413, "request body larger than INGEST_MAX_BODY_BYTES (" +
                       std::to_string(limits_.max_body_bytes) + " bytes)");
}

}  // namespace ingest::http
