// Streamed responses (Server-Sent Events): a head, then a body written in
// pieces from any thread, chunked on HTTP/1.1 and delimited by the close on
// HTTP/1.0; the connection closes when the body ends. Once a stream starts
// the connection is not read any more (a request pipelined behind it is
// never answered into its body); the client's FIN ends it.
#include <sys/epoll.h>

#include <cstdio>

#include "http/connection.hpp"

namespace ingest::http {

namespace {

std::string chunk(std::string_view piece) {
  char size[20];
  std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
  std::string out(size);
  out.reserve(out.size() + piece.size() + 2);
  out.append(piece);
  out += "\r\n";
  return out;
}

}  // namespace

void Connection::respond_stream(std::uint64_t slot, const Response& head, int version_minor,
                                std::size_t held) {
  std::lock_guard<std::mutex> lock(mutex_);
  in_flight_bytes_ -= std::min(in_flight_bytes_, held);
  closing_ = true;  // a streamed body ends the connection: no request after it is read
  awaiting_stream_ = false;
  stream_ = true;
  stream_chunked_ = version_minor == 1;
  if (closed_) return;
  Answer answer{serialize_stream_head(head, version_minor), false, true};
  answer_bytes_ += answer.bytes.size();
  answers_[slot] = std::move(answer);
  flush_answers_locked();
  write_locked();
  update_interest_locked();
}

void Connection::append_stream_locked(const std::string& bytes, std::size_t weight) {
  pending_weight_ += weight;
  if (stream_started_) {
    queue_locked(bytes);
    piece_ends_.push_back({queued_total_, weight});
  } else {
    stream_backlog_ += bytes;
    backlog_pieces_.push_back({bytes.size(), weight});
  }
}

void Connection::account_written_locked(std::size_t bytes) {
  sent_total_ += bytes;
  while (!piece_ends_.empty() && piece_ends_.front().end <= sent_total_) {
    pending_weight_ -= piece_ends_.front().weight;
    piece_ends_.pop_front();
  }
}

bool Connection::stream_write(std::string_view piece, std::size_t weight) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_ || stream_done_) return false;
  if (piece.empty()) return true;  // an empty chunk would end the body
  append_stream_locked(stream_chunked_ ? chunk(piece) : std::string(piece), weight);
  write_locked();
  update_interest_locked();
  return true;
}

std::size_t Connection::stream_pending() {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_weight_;
}

std::size_t Connection::stream_pending_bytes() {
  std::lock_guard<std::mutex> lock(mutex_);
  return (out_.size() - written_) + stream_backlog_.size();
}

std::uint64_t Connection::stream_taken() {
  std::lock_guard<std::mutex> lock(mutex_);
  return sent_total_;
}

bool Connection::stream_open() {
  std::lock_guard<std::mutex> lock(mutex_);
  return !closed_ && !stream_done_;
}

void Connection::stream_end() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stream_done_) return;
  stream_done_ = true;
  if (in_flight_ > 0) --in_flight_;
  if (closed_) return;
  if (stream_chunked_) append_stream_locked("0\r\n\r\n", 0);
  // Close after the last byte; if the head still waits for earlier
  // answers, flush_answers_locked() sees stream_done_ when it goes out.
  if (stream_started_) close_after_write_ = true;
  write_locked();
  update_interest_locked();
}

void Connection::stream_abort() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!stream_done_ && in_flight_ > 0) --in_flight_;
  stream_done_ = true;
  hard_close_locked("stream_aborted");
}

// --- ResponseStream -------------------------------------------------------------

ResponseStream::ResponseStream(std::shared_ptr<Connection> connection,
                               std::function<void(int)> on_done)
    : connection_(std::move(connection)), on_done_(std::move(on_done)) {}

ResponseStream::~ResponseStream() { abort(); }

bool ResponseStream::write(std::string_view piece, std::size_t weight) {
  return connection_->stream_write(piece, weight);
}

std::size_t ResponseStream::pending() const { return connection_->stream_pending(); }

std::size_t ResponseStream::pending_bytes() const { return connection_->stream_pending_bytes(); }

std::uint64_t ResponseStream::taken() const { return connection_->stream_taken(); }

bool ResponseStream::open() const { return connection_->stream_open(); }

void ResponseStream::end() {
  connection_->stream_end();
  finish();
}

void ResponseStream::abort() {
  connection_->stream_abort();
  finish();
}

void ResponseStream::finish() {
  std::function<void(int)> done;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done = std::move(on_done_);
    on_done_ = nullptr;
  }
  if (done) done(200);
}

}  // namespace ingest::http
