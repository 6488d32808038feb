// A connection's way in: its lifecycle, reading, taking requests (with the
// flow control), dispatching them, and its deadlines.
#include "http/connection.hpp"

#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "pipeline/logging.hpp"

namespace ingest::http {

Connection::Connection(std::shared_ptr<SharedState> shared, std::shared_ptr<EventLoop> loop, int fd,
                       std::string client)
    : shared_(std::move(shared)),
      loop_(std::move(loop)),
      fd_(fd),
      client_(std::move(client)),
      reader_(shared_->limits.reader),
      idle_since_(Clock::now()) {}

Connection::~Connection() {
  // Normally closed by then; a connection never registered still owns its fd.
  if (!closed_) {
    ::close(fd_);
    --shared_->connections;
  }
}

void Connection::open(std::optional<std::pair<int, std::string>> refuse) {
  std::lock_guard<std::mutex> lock(mutex_);
  interest_ = EPOLLIN | EPOLLRDHUP;
  id_ = loop_->add(fd_, interest_, shared_from_this());
  if (id_ == 0) {
    closed_ = true;
    closing_ = true;
    ::close(fd_);
    --shared_->connections;
    return;
  }
  if (refuse) {
    answer_error_locked(refuse->first, refuse->second);
    write_locked();
    update_interest_locked();
  }
}

void Connection::on_events(std::uint32_t events) {
  std::vector<std::pair<Request, Responder>> ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    if ((events & (EPOLLHUP | EPOLLERR)) != 0) {
      hard_close_locked("epoll_hup");  // reset, or both directions closed: nothing can be sent
      return;
    }
    if ((events & EPOLLRDHUP) != 0) {
      rdhup_seen_ = true;  // level-triggered: asked no more
      // A stream's client or a closing connection's: nothing more to say.
      if ((stream_ && !stream_done_) || half_closed_) {
        hard_close_locked("peer_fin");
        return;
      }
    }
    if ((events & EPOLLIN) != 0) read_locked();
    if ((events & EPOLLOUT) != 0) write_locked();
    parse_locked(ready);
    write_locked();
    finish_if_done_locked();
    update_interest_locked();
  }
  dispatch(ready);
}

void Connection::read_locked() {
  if (closed_) return;
  std::vector<char>& buffer = loop_->read_buffer();  // only the loop's thread reads
  const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
  if (n > 0) {
    // Lingering, or after an answer that closes: what still comes is dropped.
    if (half_closed_ || closing_) return;
    reader_.feed(buffer.data(), static_cast<std::size_t>(n));
    return;
  }
  if (n == 0) {
    peer_done_ = true;
    if (half_closed_) hard_close_locked("closed");  // our FIN and theirs: done
    return;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
  hard_close_locked("read_error");  // reset: the client is gone
}

std::size_t Connection::held_locked() const {
  return reader_.buffered() + in_flight_bytes_ + answer_bytes_ + (out_.size() - written_) +
         stream_backlog_.size();
}

bool Connection::can_take_locked() const {
  return !closing_ && !awaiting_stream_ && !paused_for_bytes_ &&
         in_flight_ < shared_->limits.max_pipelined;
}

void Connection::update_flow_locked() {
  // Above the high-water mark no request is taken (and the socket is not
  // read) until the connection is back under half of it. The bytes of the
  // reader are not counted: taking a request moves them, it adds none.
  const std::size_t waiting =
      in_flight_bytes_ + answer_bytes_ + (out_.size() - written_) + stream_backlog_.size();
  const std::size_t high = shared_->limits.connection_buffer_bytes;
  if (waiting >= high) paused_for_bytes_ = true;
  if (waiting <= high / 2) paused_for_bytes_ = false;
}

void Connection::parse_locked(std::vector<std::pair<Request, Responder>>& ready) {
  update_flow_locked();
  while (!closed_ && can_take_locked()) {
    RequestReader::Result result = reader_.next();
    // 100 Continue only for the request at the head of the pipeline: with
    // answers still owed it would arrive before them (flush_answers_locked
    // sends it once they are out).
    if (reader_.continue_wanted() && next_to_write_ == next_slot_) {
      queue_locked(kContinue);
      reader_.continue_handled();
    }
    if (result.kind == RequestReader::Result::Kind::kNeedMore) {
      if (!reader_.in_request()) {
        read_started_.reset();
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
    const std::size_t held = request.body.size() + request.path.size() + request.query.size();
    ++in_flight_;
    in_flight_bytes_ += held;
    read_started_.reset();
    idle_since_ = Clock::now();
    const bool keep_alive = request.keep_alive;
    const int version = request.version_minor;
    const bool head = request.method == "HEAD";
    const bool may_stream = shared_->may_stream && shared_->may_stream(request);
    ready.emplace_back(std::move(request),
                       Responder(shared_from_this(), slot, version, keep_alive, head, held));
    if (!keep_alive) {
      closing_ = true;  // the client asked to close after this one
      return;
    }
    if (may_stream) {
      awaiting_stream_ = true;  // nothing after it is read until its answer is known
      return;
    }
  }
}

void Connection::respond(std::uint64_t slot, const Response& response, int version_minor,
                         bool keep_alive, bool head, std::size_t held) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (in_flight_ > 0 && --in_flight_ == 0) idle_since_ = Clock::now();
  in_flight_bytes_ -= std::min(in_flight_bytes_, held);
  if (closed_) return;
  if (awaiting_stream_ && slot + 1 == next_slot_) awaiting_stream_ = false;  // not a stream
  const bool keep = keep_alive && !response.close;
  Answer answer{serialize(response, version_minor, keep, head), !keep};
  answer_bytes_ += answer.bytes.size();
  answers_[slot] = std::move(answer);
  flush_answers_locked();
  write_locked();
  finish_if_done_locked();
  update_interest_locked();
  if (!closing_ && reader_.unread() > 0) post_service_locked();
}

void Connection::post_service_locked() {
  if (service_posted_ || closed_) return;
  service_posted_ = true;
  loop_->post([self = shared_from_this()] { self->service(); });
}

void Connection::service() {
  std::vector<std::pair<Request, Responder>> ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    service_posted_ = false;
    if (closed_) return;
    parse_locked(ready);
    write_locked();
    finish_if_done_locked();
    update_interest_locked();
  }
  dispatch(ready);
}

void Connection::tick(Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return;
  if (written_ < out_.size()) {
    // Progress is what the client takes: the bytes the kernel no longer
    // holds for it. The socket's buffer may take nothing new for a while
    // (it wakes a writer only once a good part of it is free) while a
    // steady reader drains it.
    int queued = 0;
    const std::uint64_t delivered =
        ::ioctl(fd_, SIOCOUTQ, &queued) == 0 ? sent_total_ - static_cast<std::uint64_t>(queued) : 0;
    if (delivered != last_delivered_ || !write_stalled_since_) {
      last_delivered_ = delivered;
      write_stalled_since_ = now;
    } else if (now - *write_stalled_since_ >= shared_->limits.write_timeout) {
      // The client has read nothing of its answers for INGEST_WRITE_TIMEOUT.
      hard_close_locked("write_timeout");
      return;
    }
  }
  if (linger_deadline_ && now >= *linger_deadline_) {
    hard_close_locked("linger_done");
    return;
  }
  if (closing_) return;
  const auto phase = reader_.phase();
  if (phase == RequestReader::Phase::kIdle) {
    if (in_flight_ == 0 && answers_.empty() && written_ == out_.size() && !stream_ &&
        now - idle_since_ >= shared_->limits.idle_timeout) {
      begin_close_locked();  // nothing to say: an idle keep-alive connection ends
      update_interest_locked();
    }
    return;
  }
  if (!read_started_) read_started_ = now;
  const auto limit = phase == RequestReader::Phase::kHeaders ? shared_->limits.header_timeout
                                                             : shared_->limits.body_timeout;
  if (now - *read_started_ >= limit) {
    const char* what = phase == RequestReader::Phase::kHeaders
                           ? "request headers not received within INGEST_HEADER_TIMEOUT"
                           : "request body not received within INGEST_BODY_TIMEOUT";
    answer_error_locked(408, what);
    write_locked();
    update_interest_locked();
  }
}

void Connection::shut_down() {
  std::lock_guard<std::mutex> lock(mutex_);
  hard_close_locked("server_stop");
}

void Connection::dispatch(std::vector<std::pair<Request, Responder>>& ready) {
  for (auto& [request, responder] : ready) {
    try {
      shared_->handler(std::move(request), std::move(responder));
    } catch (const std::exception& e) {
      // The responder was moved into the handler; if it died unanswered
      // the client got a 500 from its destructor.
      pipeline::log::error("handler_failed", {{"error", pipeline::log::first_line(e.what())}});
    }
  }
}

}  // namespace ingest::http
