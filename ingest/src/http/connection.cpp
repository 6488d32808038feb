#include "http/connection.hpp"

#include <sys/socket.h>

#include <cerrno>

#include "pipeline/logging.hpp"

namespace ingest::http {

void Connection::on_input(const char* data, std::size_t size) {
  std::vector<std::pair<Request, Responder>> ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    if (closing_) return;  // lingering: what the client still sends is dropped
    reader_.feed(data, size);
    parse_locked(ready);
    write_locked();
  }
  dispatch(ready);
}

void Connection::on_closed() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
}

void Connection::respond(std::uint64_t slot, const Response& response, int version_minor,
                         bool keep_alive, bool head) {
  std::vector<std::pair<Request, Responder>> ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--in_flight_ == 0) idle_deadline_ = Clock::now() + core_->limits.idle_timeout;
    if (closed_) return;
    const bool keep = keep_alive && !response.close;
    answers_[slot] = Answer{serialize(response, version_minor, keep, head), !keep};
    flush_answers_locked();
    if (!closing_) parse_locked(ready);
    write_locked();
  }
  dispatch(ready);
}

void Connection::on_writable() {
  std::lock_guard<std::mutex> lock(mutex_);
  waiting_writable_ = false;
  write_locked();
}

void Connection::tick(Clock::time_point now) {
  std::vector<std::pair<Request, Responder>> none;
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_ || shut_down_) return;
  if (write_deadline_ && now >= *write_deadline_) {
    // The client does not read its responses.
    hard_close_locked();
    return;
  }
  if (linger_deadline_ && now >= *linger_deadline_) {
    hard_close_locked();
    return;
  }
  if (closing_) return;
  const auto phase = reader_.phase();
  if (phase == RequestReader::Phase::kIdle) {
    if (in_flight_ == 0 && answers_.empty() && out_.empty() && now >= idle_deadline_) {
      begin_close_locked();  // nothing to say: an idle keep-alive connection ends
      write_locked();
    }
    return;
  }
  if (!read_started_) {
    read_started_ = now;
  }
  const auto limit = phase == RequestReader::Phase::kHeaders ? core_->limits.header_timeout
                                                             : core_->limits.body_timeout;
  if (now - *read_started_ >= limit) {
    const char* what = phase == RequestReader::Phase::kHeaders
                           ? "request headers not received within INGEST_HEADER_TIMEOUT"
                           : "request body not received within INGEST_BODY_TIMEOUT";
    answer_error_locked(408, what);
    write_locked();
  }
}

void Connection::refuse(int status, const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  answer_error_locked(status, message);
  write_locked();
}

void Connection::shut_down() {
  std::lock_guard<std::mutex> lock(mutex_);
  hard_close_locked();
}

void Connection::parse_locked(std::vector<std::pair<Request, Responder>>& ready) {
  while (!closing_ && in_flight_ < core_->limits.max_pipelined) {
    RequestReader::Result result = reader_.next();
    if (reader_.take_continue()) queue_locked("HTTP/1.1 100 Continue\r\n\r\n");
    if (result.kind == RequestReader::Result::Kind::kNeedMore) {
      if (reader_.phase() == RequestReader::Phase::kIdle) {
        read_started_.reset();
        idle_deadline_ = Clock::now() + core_->limits.idle_timeout;
      } else if (!read_started_) {
        read_started_ = Clock::now();
      }
      return;
    }
    if (result.kind == RequestReader::Result::Kind::kError) {
      answer_error_locked(result.status, result.message);
      return;
    }
    Request& request = result.request;
    request.client = client_;
    const std::uint64_t slot = next_slot_++;
    ++in_flight_;
    const bool keep_alive = request.keep_alive;
    const int version = request.version_minor;
    const bool head = request.method == "HEAD";
    ready.emplace_back(std::move(request),
                       Responder(shared_from_this(), slot, version, keep_alive, head));
    read_started_.reset();
    if (!keep_alive) {
      closing_ = true;  // the client asked to close after this one
      return;
    }
  }
}

void Connection::answer_error_locked(int status, const std::string& message) {
  const std::uint64_t slot = next_slot_++;
  Response response = json_error(status, message);
  if (status == 503) response.header("Retry-After", "1");
  answers_[slot] = Answer{serialize(response, 1, false, false), true};
  closing_ = true;
  flush_answers_locked();
}

void Connection::flush_answers_locked() {
  for (auto it = answers_.find(next_to_write_); it != answers_.end();
       it = answers_.find(next_to_write_)) {
    queue_locked(it->second.bytes);
    const bool close_after = it->second.close_after;
    if (it->second.stream_head) {
      // The body follows; nothing after it goes out.
      answers_.clear();
      ++next_to_write_;
      stream_started_ = true;
      std::uint64_t end = queued_total_;
      for (const Piece& piece : backlog_pieces_)
        piece_ends_.push_back({end += piece.end, piece.weight});
      queue_locked(stream_backlog_);
      stream_backlog_.clear();
      backlog_pieces_.clear();
      if (stream_done_) close_after_write_ = true;
      break;
    }
    answers_.erase(it);
    ++next_to_write_;
    if (close_after) {
      closing_ = true;
      close_after_write_ = true;
      answers_.clear();  // nothing after a closing answer goes out
      break;
    }
  }
}

void Connection::write_locked() {
  if (closed_ || shut_down_) return;
  while (written_ < out_.size()) {
    const ssize_t n =
        ::send(fd_, out_.data() + written_, out_.size() - written_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      written_ += static_cast<std::size_t>(n);
      account_written_locked(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!write_deadline_) write_deadline_ = Clock::now() + core_->limits.write_timeout;
      if (!waiting_writable_) {
        waiting_writable_ = true;
        core_->when_writable(fd_, shared_from_this());
      }
      return;
    }
    hard_close_locked();  // reset or broken: the peer is gone
    return;
  }
  out_.clear();
  written_ = 0;
  write_deadline_.reset();
  if (close_after_write_) begin_close_locked();
}

void Connection::begin_close_locked() {
  closing_ = true;
  if (half_closed_) return;
  half_closed_ = true;
  ::shutdown(fd_, SHUT_WR);
  linger_deadline_ = Clock::now() + kLinger;
}

void Connection::hard_close_locked() {
  closing_ = true;
  if (closed_ || shut_down_) return;
  shut_down_ = true;
  ::shutdown(fd_, SHUT_RDWR);
}

void Connection::dispatch(std::vector<std::pair<Request, Responder>>& ready) {
  for (auto& [request, responder] : ready) {
    try {
      core_->handler(std::move(request), std::move(responder));
    } catch (const std::exception& e) {
      // The responder was moved into the handler; if it died unanswered
      // the client got a 500 from its destructor.
      pipeline::log::error("handler_failed", {{"error", pipeline::log::first_line(e.what())}});
    }
  }
}

}  // namespace ingest::http
