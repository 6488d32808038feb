#pragma once

// The pieces of HttpServer that every connection shares (Core) and one
// connection (Connection); private to src/http/.
#include <pistache/endpoint.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "http/request_reader.hpp"
#include "http/server.hpp"

namespace ingest::http {

using Clock = std::chrono::steady_clock;

// Pistache's own keep-alive and header/body timers would close a peer
// without telling the handler (and inject a 408 into a response that is
// still being computed); this server keeps its own, so Pistache's never fire.
inline constexpr auto kNever = std::chrono::hours(24 * 365);
// After its last response, a connection that closes keeps reading (and
// dropping) what the client still sends for this long, so that the client
// sees the response rather than a reset (RFC 9112 §9.6).
inline constexpr auto kLinger = std::chrono::seconds(2);
// How often deadlines are looked at.
inline constexpr auto kTick = std::chrono::milliseconds(100);
inline constexpr const char* kConnectionKey = "ingest.connection";

class Connection;

// What every connection shares: the limits, the handler, the open
// connections, and the thread that finishes writes the socket could not take
// at once and enforces the deadlines.
struct HttpServer::Core {
  Core(std::string address_, std::uint16_t port_, ServerLimits limits_, RequestHandler handler_)
      : address(std::move(address_)),
        requested_port(port_),
        limits(limits_),
        handler(std::move(handler_)) {}

  void add(const std::shared_ptr<Connection>& connection);
  void remove(const Connection* connection);
  /// Calls `fn` once the socket of `connection` can take more bytes.
  void when_writable(int fd, const std::shared_ptr<Connection>& connection);
  void run_watcher();

  std::string address;
  std::uint16_t requested_port;
  ServerLimits limits;
  RequestHandler handler;
  std::unique_ptr<Pistache::Http::Endpoint> endpoint;

  mutable std::mutex mutex;
  std::unordered_map<const Connection*, std::weak_ptr<Connection>> connections;
  std::unordered_map<int, std::weak_ptr<Connection>> writable_waiters;
  std::atomic<bool> stopping{false};
  int epoll_fd = -1;
  std::thread watcher;
};

// One TCP connection: its reader, the responses in request order, and the
// bytes not yet written. Its mutex guards all of it; the socket is written
// only under it, and only while Pistache has not closed it (`closed_`).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(HttpServer::Core* core, int fd, std::string client)
      : core_(core), fd_(fd), client_(std::move(client)), reader_(core->limits.reader) {
    idle_deadline_ = Clock::now() + core_->limits.idle_timeout;
  }

  // Bytes from the client (Pistache's reactor thread).
  void on_input(const char* data, std::size_t size);

  // Pistache removed the peer: the fd is about to be closed.
  void on_closed();

  // A response for `slot`, from any thread.
  void respond(std::uint64_t slot, const Response& response, int version_minor, bool keep_alive,
               bool head);

  // The socket can take bytes again (the watcher thread).
  void on_writable();

  // Deadlines (the watcher thread).
  void tick(Clock::time_point now);

  // Answers `status` before any request and closes (too many connections).
  void refuse(int status, const std::string& message);

  // The server stops: whatever is in flight is cut.
  void shut_down();

  int fd() const { return fd_; }

  // A streamed response for `slot` (http/stream.cpp): its head now, its
  // body in pieces; no further request of the connection is read.
  void respond_stream(std::uint64_t slot, const Response& head, int version_minor);
  bool stream_write(std::string_view piece, std::size_t weight);
  std::size_t stream_pending();
  bool stream_open();
  void stream_end();
  void stream_abort();

 private:
  struct Answer {
    std::string bytes;
    bool close_after = false;
    bool stream_head = false;  ///< the head of a streamed body: nothing is flushed after it
  };

  // Appends to the output (and counts it, for the stream's pending()).
  void queue_locked(const std::string& bytes) {
    out_ += bytes;
    queued_total_ += bytes.size();
  }
  // Bytes of the stream's body, to `out_` once its head went out, to
  // `stream_backlog_` before; each piece's end is remembered for pending().
  void append_stream_locked(const std::string& bytes, std::size_t weight);
  // What the socket took: pieces fully written are no longer pending.
  void account_written_locked(std::size_t bytes);

  // Takes complete requests out of the reader while the connection may have
  // more in flight; each gets the next response slot.
  void parse_locked(std::vector<std::pair<Request, Responder>>& ready);

  // A response that ends the connection, in the next slot, after the
  // answers still owed.
  void answer_error_locked(int status, const std::string& message);

  // Moves the answers that are next in order to the output.
  void flush_answers_locked();

  void write_locked();

  // Ends the response stream: FIN after the last byte, then keep reading
  // (and dropping) for a moment so the client sees the response.
  void begin_close_locked();

  // Pistache reads EOF next and removes the peer (then onDisconnection).
  void hard_close_locked();

  void dispatch(std::vector<std::pair<Request, Responder>>& ready);

  HttpServer::Core* core_;
  const int fd_;
  const std::string client_;
  std::mutex mutex_;
  RequestReader reader_;
  bool closed_ = false;   // Pistache removed the peer
  bool closing_ = false;  // no further request is read
  bool half_closed_ = false;
  bool shut_down_ = false;
  bool close_after_write_ = false;
  bool waiting_writable_ = false;
  std::uint64_t next_slot_ = 0;
  std::uint64_t next_to_write_ = 0;
  std::size_t in_flight_ = 0;
  std::map<std::uint64_t, Answer> answers_;
  std::string out_;
  std::size_t written_ = 0;
  std::optional<Clock::time_point> read_started_;
  std::optional<Clock::time_point> write_deadline_;
  std::optional<Clock::time_point> linger_deadline_;
  Clock::time_point idle_deadline_;
  // The streamed response, if any.
  bool stream_ = false;          // respond_stream() was called
  bool stream_started_ = false;  // its head is in out_
  bool stream_done_ = false;     // ended or aborted
  bool stream_chunked_ = true;   // HTTP/1.1: chunked; HTTP/1.0: delimited by the close
  std::string stream_backlog_;
  struct Piece {
    std::uint64_t end;   // queued_total_ after it (in the backlog: its size)
    std::size_t weight;  // what it counts for in stream_pending() (events)
  };
  std::vector<Piece> backlog_pieces_;
  std::uint64_t queued_total_ = 0;  // bytes ever put in out_
  std::uint64_t sent_total_ = 0;    // bytes of out_ ever sent
  std::deque<Piece> piece_ends_;    // pieces in out_ not yet sent
  std::size_t pending_weight_ = 0;  // their weights, summed
};

}  // namespace ingest::http
