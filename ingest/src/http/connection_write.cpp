// A connection's way out: answers in request order, the writes (from any
// thread, never blocking), what epoll watches, and closing.
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "http/connection.hpp"
#include "pipeline/logging.hpp"

namespace ingest::http {
namespace {

// Output buffers keep at most this much spare capacity once drained.
constexpr std::size_t kKeptOutputCapacity = std::size_t{64} * 1024;

}  // namespace

void Connection::answer_error_locked(int status, const std::string& message) {
  const std::uint64_t slot = next_slot_++;
  Response response = json_error(status, message);
  if (status == 503) response.header("Retry-After", "1");
  Answer answer{serialize(response, 1, false, false), true};
  answer_bytes_ += answer.bytes.size();
  answers_[slot] = std::move(answer);
  closing_ = true;
  reader_.continue_handled();
  flush_answers_locked();
}

void Connection::flush_answers_locked() {
  for (auto it = answers_.find(next_to_write_); it != answers_.end();
       it = answers_.find(next_to_write_)) {
    Answer answer = std::move(it->second);
    answers_.erase(it);
    answer_bytes_ -= std::min(answer_bytes_, answer.bytes.size());
    ++next_to_write_;
    queue_locked(answer.bytes);
    if (answer.stream_head) {
      // The body follows; nothing after it goes out.
      answers_.clear();
      answer_bytes_ = 0;
      stream_started_ = true;
      std::uint64_t end = queued_total_;
      for (const Piece& piece : backlog_pieces_)
        piece_ends_.push_back({end += piece.end, piece.weight});
      queue_locked(stream_backlog_);
      std::string().swap(stream_backlog_);
      backlog_pieces_.clear();
      if (stream_done_) close_after_write_ = true;
      return;
    }
    if (answer.close_after) {
      closing_ = true;
      close_after_write_ = true;
      answers_.clear();  // nothing after a closing answer goes out
      answer_bytes_ = 0;
      return;
    }
  }
  // The request being read waited for its 100 until the answers before it
  // were out.
  if (!closing_ && reader_.continue_wanted() && next_to_write_ == next_slot_) {
    queue_locked(kContinue);
    reader_.continue_handled();
  }
}

void Connection::queue_locked(const std::string& bytes) {
  if (bytes.empty()) return;
  if (written_ == out_.size()) {
    out_.clear();
    written_ = 0;
  }
  out_ += bytes;
  queued_total_ += bytes.size();
}

void Connection::write_locked() {
  if (closed_) return;
  bool progress = false;
  while (written_ < out_.size()) {
    const ssize_t n =
        ::send(fd_, out_.data() + written_, out_.size() - written_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      written_ += static_cast<std::size_t>(n);
      account_written_locked(static_cast<std::size_t>(n));
      progress = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // The write timeout counts from the last progress (tick() looks at
      // what the client took), not from the first byte: a client that
      // keeps reading is never cut.
      if (progress || !write_stalled_since_) write_stalled_since_ = Clock::now();
      compact_output_locked();
      return;
    }
    hard_close_locked("write_error");  // reset or broken: the client is gone
    return;
  }
  write_stalled_since_.reset();
  compact_output_locked();
  if (close_after_write_) begin_close_locked();
}

void Connection::compact_output_locked() {
  if (written_ == out_.size()) {
    out_.clear();
    written_ = 0;
    if (out_.capacity() > kKeptOutputCapacity) std::string().swap(out_);
    return;
  }
  if (written_ >= kKeptOutputCapacity && written_ >= out_.size() / 2) {
    out_.erase(0, written_);
    written_ = 0;
  }
}

void Connection::update_interest_locked() {
  if (closed_) return;
  update_flow_locked();
  std::uint32_t want = 0;
  // Reading: the request being read, and the next ones while there is room
  // for them (flow control); after a closing answer, only the linger.
  const bool reading =
      !peer_done_ &&
      (half_closed_ ||
       (!closing_ && (reader_.in_request() || (can_take_locked() && reader_.unread() == 0))));
  if (reading) want |= EPOLLIN;
  if (!rdhup_seen_) want |= EPOLLRDHUP;
  if (written_ < out_.size()) want |= EPOLLOUT;
  if (want == interest_) return;
  if (loop_->modify(fd_, id_, want)) interest_ = want;
}

void Connection::finish_if_done_locked() {
  if (closed_ || !peer_done_ || stream_) return;
  if (in_flight_ > 0 || !answers_.empty() || written_ < out_.size()) return;
  if (!closing_ && !reader_.in_request() && reader_.unread() > 0) return;  // more to answer
  hard_close_locked("finished");
}

void Connection::begin_close_locked() {
  closing_ = true;
  if (half_closed_) return;
  if (peer_done_) {
    hard_close_locked("finished");
    return;
  }
  half_closed_ = true;
  ::shutdown(fd_, SHUT_WR);
  linger_deadline_ = Clock::now() + kLinger;
}

void Connection::hard_close_locked(const char* reason) {
  closing_ = true;
  if (closed_) return;
  closed_ = true;
  pipeline::log::debug("http_connection_closed", {{"client", client_}, {"reason", reason}});
  loop_->remove(fd_, id_);
  ::close(fd_);
  --shared_->connections;
  answers_.clear();
  answer_bytes_ = 0;
  std::string().swap(out_);
  written_ = 0;
  std::string().swap(stream_backlog_);
  reader_.release_memory();
}

}  // namespace ingest::http
