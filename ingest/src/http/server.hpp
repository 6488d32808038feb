#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "http/message.hpp"
#include "http/request_reader.hpp"

namespace ingest::http {

/// The limits of the front door; each is a named setting of ingest.
struct ServerLimits {
  ReaderLimits reader;
  std::chrono::milliseconds header_timeout{10000};  ///< INGEST_HEADER_TIMEOUT: 408 beyond
  std::chrono::milliseconds body_timeout{30000};    ///< INGEST_BODY_TIMEOUT: 408 beyond
  std::chrono::milliseconds idle_timeout{60000};    ///< INGEST_IDLE_TIMEOUT: closed beyond
  /// INGEST_WRITE_TIMEOUT: a connection whose unsent answers make no
  /// progress (the client reads nothing) for this long is closed.
  std::chrono::milliseconds write_timeout{30000};
  std::size_t max_connections = 10000;  ///< INGEST_MAX_CONNECTIONS: 503 and close beyond
  std::size_t max_pipelined = 32;  ///< INGEST_MAX_PIPELINED: requests of one connection in flight
  /// INGEST_CONNECTION_BUFFER_BYTES: the high-water mark of one connection.
  /// While the bytes it holds (requests received and not yet answered,
  /// answers not yet sent) are above it, the connection is not read and no
  /// further request of it is taken; reading resumes below half of it.
  std::size_t connection_buffer_bytes = std::size_t{1024} * 1024;
  std::size_t threads = 2;  ///< INGEST_HTTP_THREADS: I/O threads
};

class Connection;

/// The body of a streamed response (Server-Sent Events), written in pieces
/// from any thread after Responder::stream(). The connection closes when it
/// ends; no later request of that connection is read.
class ResponseStream {
 public:
  ResponseStream(std::shared_ptr<Connection> connection, std::function<void(int)> on_done);
  ~ResponseStream();  ///< abort() unless ended
  ResponseStream(const ResponseStream&) = delete;
  ResponseStream& operator=(const ResponseStream&) = delete;

  /// Appends a piece to the body, written without blocking; it counts as
  /// `weight` (say, the events in it) in pending() until the socket took it.
  /// False once the stream is over (the client went away, end(), abort()).
  bool write(std::string_view piece, std::size_t weight = 1);
  /// The weights of the pieces the socket has not taken yet.
  std::size_t pending() const;
  /// The bytes the socket has not taken yet.
  std::size_t pending_bytes() const;
  /// The bytes the socket has taken so far (head and chunk framing included).
  std::uint64_t taken() const;
  bool open() const;
  /// Ends the body; the connection closes after its last byte.
  void end();
  /// Cuts the connection at once (a client too slow to keep).
  void abort();

 private:
  void finish();
  std::shared_ptr<Connection> connection_;
  std::mutex mutex_;
  std::function<void(int)> on_done_;
};

/// The answer to one request: send() once, from any thread. Responses of a
/// connection go out in the order of its requests, whatever order they are
/// sent in. Destroyed without send(), it answers 500 (every request gets an
/// answer).
class Responder {
 public:
  Responder() = default;
  Responder(std::shared_ptr<Connection> connection, std::uint64_t slot, int version_minor,
            bool keep_alive, bool head, std::size_t held_bytes);
  Responder(Responder&& other) noexcept;
  Responder& operator=(Responder&& other) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder();

  void send(Response&& response);
  /// Answers with `head` (its body is ignored) and a body written later
  /// through the stream. on_sent's callback runs when the stream ends.
  std::shared_ptr<ResponseStream> stream(const Response& head);
  /// Called with the status just before the response is queued (metrics).
  void on_sent(std::function<void(int status)> callback) { on_sent_ = std::move(callback); }

 private:
  std::shared_ptr<Connection> connection_;
  std::uint64_t slot_ = 0;
  int version_minor_ = 1;
  bool keep_alive_ = true;
  bool head_ = false;
  std::size_t held_bytes_ = 0;  ///< what the request counts for in its connection's buffer
  std::function<void(int)> on_sent_;
};

/// What the server does with each request: runs on an I/O thread, so it
/// must not block; work that waits goes elsewhere with the Responder.
using RequestHandler = std::function<void(Request&& request, Responder responder)>;

/// True for a request whose answer may be a stream (Responder::stream): no
/// request pipelined after it is read until its answer is known, and none at
/// all once that answer turns out to be a stream.
using StreamPredicate = std::function<bool(const Request& request)>;

/// HTTP/1.1 on epoll: a listener and INGEST_HTTP_THREADS I/O threads, each
/// with the connections it was given. Requests are framed strictly by
/// RequestReader before anything uses them; connections are kept alive
/// unless the client asks otherwise (RFC 9112 §9.3) and closed after
/// INGEST_IDLE_TIMEOUT; pipelined requests are answered in order; responses
/// are completed from any thread and written without blocking a thread.
/// Flow control per connection: a connection is read only while it holds
/// less than INGEST_CONNECTION_BUFFER_BYTES and has fewer than
/// INGEST_MAX_PIPELINED requests in flight, so a client that does not read
/// its answers, or sends while its requests wait, stops being read; one
/// whose answers make no progress for INGEST_WRITE_TIMEOUT is closed. At
/// most INGEST_MAX_CONNECTIONS connections. Every error answer is JSON.
class HttpServer {
 public:
  HttpServer(std::string address, std::uint16_t port, ServerLimits limits, RequestHandler handler,
             StreamPredicate may_stream = nullptr);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds and serves on background threads. Throws when the port is taken.
  void start();
  /// Closes every connection and stops the threads. Idempotent.
  void stop();
  std::uint16_t port() const;
  std::size_t open_connections() const;

  struct Core;

 private:
  std::unique_ptr<Core> core_;
};

}  // namespace ingest::http
