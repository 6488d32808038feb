#pragma once

// The pieces of HttpServer that every connection shares (Shared) and one
// connection (Connection); private to src/http/.
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/event_loop.hpp"
#include "http/request_reader.hpp"
#include "http/server.hpp"

namespace ingest::http {

// After its last response, a connection that closes keeps reading (and
// dropping) what the client still sends for this long, so that the client
// sees the response rather than a reset (RFC 9112 §9.6).
inline constexpr auto kLinger = std::chrono::seconds(2);
// How often deadlines are looked at.
inline constexpr auto kTick = std::chrono::milliseconds(100);
// The interim answer to "Expect: 100-continue".
inline constexpr const char* kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// Bytes read from a socket per readiness event: a connection with more to
// send waits for its next turn, so one client cannot hold an I/O thread.
inline constexpr std::size_t kReadChunk = std::size_t{64} * 1024;

// What every connection shares, kept alive by each of them (a Responder may
// outlive the server).
struct SharedState {
  ServerLimits limits;
  RequestHandler handler;
  StreamPredicate may_stream;
  std::atomic<std::size_t> connections{0};
};

// One TCP connection: its reader, the responses in request order, the bytes
// not yet written, and the flow control between them. Its mutex guards all
// of it; the socket is read, written and closed only under it. Requests are
// handed to the handler on the connection's I/O thread only.
class Connection final : public LoopClient, public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<SharedState> shared, std::shared_ptr<EventLoop> loop, int fd,
             std::string client);
  ~Connection() override;

  // Registers the socket with its loop (reading). Answers `status` first and
  // closes when `refuse` is set (too many connections).
  void open(std::optional<std::pair<int, std::string>> refuse);

  void on_events(std::uint32_t events) override;
  void tick(Clock::time_point now) override;

  // A response for `slot`, from any thread; `held` is what its request
  // counted for in the buffer.
  void respond(std::uint64_t slot, const Response& response, int version_minor, bool keep_alive,
               bool head, std::size_t held);

  // The server stops: whatever is in flight is cut.
  void shut_down();

  // A streamed response for `slot` (http/stream.cpp): its head now, its
  // body in pieces; no further request of the connection is read.
  void respond_stream(std::uint64_t slot, const Response& head, int version_minor,
                      std::size_t held);
  bool stream_write(std::string_view piece, std::size_t weight);
  std::size_t stream_pending();
  std::size_t stream_pending_bytes();
  std::uint64_t stream_taken();
  bool stream_open();
  void stream_end();
  void stream_abort();

 private:
  struct Answer {
    std::string bytes;
    bool close_after = false;
    bool stream_head = false;  ///< the head of a streamed body: nothing is flushed after it
  };

  // Reading, taking requests, writing (each under the mutex).
  void read_locked();
  void parse_locked(std::vector<std::pair<Request, Responder>>& ready);
  bool can_take_locked() const;
  void update_flow_locked();
  std::size_t held_locked() const;
  void answer_error_locked(int status, const std::string& message);
  void flush_answers_locked();
  void queue_locked(const std::string& bytes);
  void write_locked();
  void compact_output_locked();
  // What epoll watches, from the state.
  void update_interest_locked();
  // FIN after the last byte, then keep reading (and dropping) a moment.
  void begin_close_locked();
  // Gone now: unwatched, closed, forgotten.
  void hard_close_locked(const char* reason);
  // Work after a response: take the next requests on the loop's thread.
  void service();
  void post_service_locked();
  // Closes once the client is done and nothing more is owed to it.
  void finish_if_done_locked();
  void dispatch(std::vector<std::pair<Request, Responder>>& ready);

  // Streams (http/stream.cpp).
  void append_stream_locked(const std::string& bytes, std::size_t weight);
  void account_written_locked(std::size_t bytes);

  std::shared_ptr<SharedState> shared_;
  std::shared_ptr<EventLoop> loop_;
  const int fd_;
  const std::string client_;
  std::uint64_t id_ = 0;  // in the loop
  std::mutex mutex_;
  RequestReader reader_;
  bool closed_ = false;       // the socket is closed
  bool closing_ = false;      // no further request is read
  bool half_closed_ = false;  // our FIN went out
  bool peer_done_ = false;    // the client's FIN was read (it sends nothing more)
  bool rdhup_seen_ = false;   // epoll told of the client's FIN (no longer asked)
  bool close_after_write_ = false;
  bool paused_for_bytes_ = false;  // above the high-water mark, until below the low one
  bool awaiting_stream_ = false;   // a request that may stream is in flight
  bool service_posted_ = false;
  std::uint32_t interest_ = 0;
  std::uint64_t next_slot_ = 0;
  std::uint64_t next_to_write_ = 0;
  std::size_t in_flight_ = 0;
  std::size_t in_flight_bytes_ = 0;
  std::map<std::uint64_t, Answer> answers_;
  std::size_t answer_bytes_ = 0;  // of answers_
  std::string out_;
  std::size_t written_ = 0;
  std::optional<Clock::time_point> read_started_;
  std::optional<Clock::time_point> write_stalled_since_;  // unsent bytes, no progress since
  std::optional<Clock::time_point> linger_deadline_;
  Clock::time_point idle_since_;
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
  std::uint64_t queued_total_ = 0;    // bytes ever put in out_
  std::uint64_t sent_total_ = 0;      // bytes of out_ ever sent
  std::uint64_t last_delivered_ = 0;  // sent_total_ less the socket's queue, at the last tick
  std::deque<Piece> piece_ends_;      // pieces in out_ not yet sent
  std::size_t pending_weight_ = 0;    // their weights, summed
};

}  // namespace ingest::http
