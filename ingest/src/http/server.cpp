#include "http/server.hpp"
#include "pipeline/logging.hpp"

#include <pistache/endpoint.h>
#include <pistache/http.h>
#include <pistache/peer.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace ingest::http {

using Clock = std::chrono::steady_clock;

namespace {

// Pistache's own keep-alive and header/body timers would close a peer
// without telling the handler (and inject a 408 into a response that is
// still being computed); this server keeps its own, so Pistache's never fire.
constexpr auto kNever = std::chrono::hours(24 * 365);
// After its last response, a connection that closes keeps reading (and
// dropping) what the client still sends for this long, so that the client
// sees the response rather than a reset (RFC 9112 §9.6).
constexpr auto kLinger = std::chrono::seconds(2);
// How often deadlines are looked at.
constexpr auto kTick = std::chrono::milliseconds(100);
constexpr const char* kConnectionKey = "ingest.connection";

}  // namespace

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
  void on_input(const char* data, std::size_t size) {
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

  // Pistache removed the peer: the fd is about to be closed.
  void on_closed() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }

  // A response for `slot`, from any thread.
  void respond(std::uint64_t slot, const Response& response, int version_minor, bool keep_alive,
               bool head) {
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

  // The socket can take bytes again (the watcher thread).
  void on_writable() {
    std::lock_guard<std::mutex> lock(mutex_);
    waiting_writable_ = false;
    write_locked();
  }

  // Deadlines (the watcher thread).
  void tick(Clock::time_point now) {
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

  // Answers `status` before any request and closes (too many connections).
  void refuse(int status, const std::string& message) {
    std::lock_guard<std::mutex> lock(mutex_);
    answer_error_locked(status, message);
    write_locked();
  }

  // The server stops: whatever is in flight is cut.
  void shut_down() {
    std::lock_guard<std::mutex> lock(mutex_);
    hard_close_locked();
  }

  int fd() const { return fd_; }

 private:
  struct Answer {
    std::string bytes;
    bool close_after = false;
  };

  // Takes complete requests out of the reader while the connection may have
  // more in flight; each gets the next response slot.
  void parse_locked(std::vector<std::pair<Request, Responder>>& ready) {
    while (!closing_ && in_flight_ < core_->limits.max_pipelined) {
      RequestReader::Result result = reader_.next();
      if (reader_.take_continue()) out_ += "HTTP/1.1 100 Continue\r\n\r\n";
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

  // A response that ends the connection, in the next slot, after the
  // answers still owed.
  void answer_error_locked(int status, const std::string& message) {
    const std::uint64_t slot = next_slot_++;
    Response response = json_error(status, message);
    if (status == 503) response.header("Retry-After", "1");
    answers_[slot] = Answer{serialize(response, 1, false, false), true};
    closing_ = true;
    flush_answers_locked();
  }

  // Moves the answers that are next in order to the output.
  void flush_answers_locked() {
    for (auto it = answers_.find(next_to_write_); it != answers_.end();
         it = answers_.find(next_to_write_)) {
      out_ += it->second.bytes;
      const bool close_after = it->second.close_after;
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

  void write_locked() {
    if (closed_ || shut_down_) return;
    while (written_ < out_.size()) {
      const ssize_t n =
          ::send(fd_, out_.data() + written_, out_.size() - written_, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        written_ += static_cast<std::size_t>(n);
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

  // Ends the response stream: FIN after the last byte, then keep reading
  // (and dropping) for a moment so the client sees the response.
  void begin_close_locked() {
    closing_ = true;
    if (half_closed_) return;
    half_closed_ = true;
    ::shutdown(fd_, SHUT_WR);
    linger_deadline_ = Clock::now() + kLinger;
  }

  // Pistache reads EOF next and removes the peer (then onDisconnection).
  void hard_close_locked() {
    closing_ = true;
    if (closed_ || shut_down_) return;
    shut_down_ = true;
    ::shutdown(fd_, SHUT_RDWR);
  }

  void dispatch(std::vector<std::pair<Request, Responder>>& ready) {
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
};

// --- Responder ---------------------------------------------------------------

Responder::Responder(std::shared_ptr<Connection> connection, std::uint64_t slot, int version_minor,
                     bool keep_alive, bool head)
    : connection_(std::move(connection)),
      slot_(slot),
      version_minor_(version_minor),
      keep_alive_(keep_alive),
      head_(head) {}

Responder::Responder(Responder&& other) noexcept
    : connection_(std::move(other.connection_)),
      slot_(other.slot_),
      version_minor_(other.version_minor_),
      keep_alive_(other.keep_alive_),
      head_(other.head_),
      on_sent_(std::move(other.on_sent_)) {}

Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (connection_) send(json_error(500, "internal error: request not answered"));
    connection_ = std::move(other.connection_);
    slot_ = other.slot_;
    version_minor_ = other.version_minor_;
    keep_alive_ = other.keep_alive_;
    head_ = other.head_;
    on_sent_ = std::move(other.on_sent_);
  }
  return *this;
}

Responder::~Responder() {
  if (connection_) send(json_error(500, "internal error: request not answered"));
}

void Responder::send(Response response) {
  if (!connection_) return;
  std::shared_ptr<Connection> connection = std::move(connection_);
  if (on_sent_) {
    auto callback = std::move(on_sent_);
    callback(response.status);
  }
  connection->respond(slot_, response, version_minor_, keep_alive_, head_);
}

// --- The Pistache handler ------------------------------------------------------

namespace {

// Receives Pistache's TCP events for the peers of one reactor thread (each
// thread works on a clone). Pistache's HTTP parser is never fed.
class PeerHandler : public Pistache::Http::Handler {
 public:
  HTTP_PROTOTYPE(PeerHandler)

  explicit PeerHandler(std::shared_ptr<HttpServer::Core> core) : core_(std::move(core)) {}

  void onRequest(const Pistache::Http::Request& /*request*/,
                 Pistache::Http::ResponseWriter /*response*/) override {}

  void onConnection(const std::shared_ptr<Pistache::Tcp::Peer>& peer) override {
    // Pistache's idle check looks up a parser on every peer every 500 ms.
    peer->putData(Pistache::Http::Handler::ParserData,
                  std::make_shared<Pistache::Http::RequestParser>(1));
    auto connection = std::make_shared<Connection>(core_.get(), peer->fd(), peer->address().host());
    bool full = false;
    {
      std::lock_guard<std::mutex> lock(core_->mutex);
      full = core_->connections.size() >= core_->limits.max_connections;
    }
    peer->putData(kConnectionKey, connection);
    core_->add(connection);
    if (full) {
      // Said, then closed: the connection counts only until then.
      static std::atomic<std::uint64_t> refused{0};
      if (refused++ % 1000 == 0) {
        pipeline::log::warn("connection_refused", {{"reason", "INGEST_MAX_CONNECTIONS"},
                                                   {"limit", core_->limits.max_connections},
                                                   {"refused", refused.load()}});
      }
      connection->refuse(503, "too many connections (INGEST_MAX_CONNECTIONS); retry later");
    }
  }

  void onInput(const char* buffer, size_t length,
               const std::shared_ptr<Pistache::Tcp::Peer>& peer) override {
    if (auto connection = std::static_pointer_cast<Connection>(peer->tryGetData(kConnectionKey))) {
      connection->on_input(buffer, length);
    }
  }

  void onDisconnection(const std::shared_ptr<Pistache::Tcp::Peer>& peer) override {
    if (auto connection = std::static_pointer_cast<Connection>(peer->tryGetData(kConnectionKey))) {
      connection->on_closed();
      core_->remove(connection.get());
    }
  }

 private:
  std::shared_ptr<HttpServer::Core> core_;
};

}  // namespace

// --- Core ----------------------------------------------------------------------

void HttpServer::Core::add(const std::shared_ptr<Connection>& connection) {
  std::lock_guard<std::mutex> lock(mutex);
  connections[connection.get()] = connection;
}

void HttpServer::Core::remove(const Connection* connection) {
  std::lock_guard<std::mutex> lock(mutex);
  connections.erase(connection);
}

void HttpServer::Core::when_writable(int fd, const std::shared_ptr<Connection>& connection) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    writable_waiters[fd] = connection;
  }
  epoll_event event{};
  event.events = EPOLLOUT | EPOLLONESHOT;
  event.data.fd = fd;
  if (::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &event) != 0 && errno == ENOENT) {
    ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
  }
}

void HttpServer::Core::run_watcher() {
  auto next_tick = Clock::now() + kTick;
  epoll_event events[64];
  while (!stopping) {
    const auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - Clock::now());
    const int n =
        ::epoll_wait(epoll_fd, events, 64, static_cast<int>(std::max<long>(0, wait.count())));
    for (int i = 0; i < n; ++i) {
      std::shared_ptr<Connection> connection;
      {
        std::lock_guard<std::mutex> lock(mutex);
        const auto it = writable_waiters.find(events[i].data.fd);
        if (it != writable_waiters.end()) {
          connection = it->second.lock();
          writable_waiters.erase(it);
        }
      }
      if (connection) connection->on_writable();
    }
    const auto now = Clock::now();
    if (now < next_tick) continue;
    next_tick = now + kTick;
    std::vector<std::shared_ptr<Connection>> open;
    {
      std::lock_guard<std::mutex> lock(mutex);
      open.reserve(connections.size());
      for (const auto& entry : connections) {
        if (auto connection = entry.second.lock()) open.push_back(std::move(connection));
      }
    }
    for (const auto& connection : open) connection->tick(now);
  }
}

// --- HttpServer ------------------------------------------------------------------

HttpServer::HttpServer(std::string address, std::uint16_t port, ServerLimits limits,
                       RequestHandler handler)
    : core_(std::make_shared<Core>(std::move(address), port, limits, std::move(handler))) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  core_->epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (core_->epoll_fd < 0) throw std::runtime_error("epoll_create1 failed");
  Pistache::Address address(core_->address, Pistache::Port(core_->requested_port));
  core_->endpoint = std::make_unique<Pistache::Http::Endpoint>(address);
  auto options = Pistache::Http::Endpoint::options()
                     .threads(static_cast<int>(core_->limits.threads))
                     .flags(Pistache::Tcp::Options::ReuseAddr)
                     .headerTimeout(kNever)
                     .bodyTimeout(kNever)
                     .keepaliveTimeout(kNever);
  core_->endpoint->init(options);
  core_->endpoint->setHandler(std::make_shared<PeerHandler>(core_));
  core_->endpoint->serveThreaded();
  core_->watcher = std::thread([core = core_.get()] { core->run_watcher(); });
}

void HttpServer::stop() {
  if (!core_ || !core_->endpoint) return;
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard<std::mutex> lock(core_->mutex);
    for (const auto& entry : core_->connections) {
      if (auto connection = entry.second.lock()) open.push_back(std::move(connection));
    }
  }
  for (const auto& connection : open) connection->shut_down();
  core_->endpoint->shutdown();
  core_->endpoint.reset();  // joins the reactor threads
  core_->stopping = true;
  if (core_->watcher.joinable()) core_->watcher.join();
  ::close(core_->epoll_fd);
  core_->epoll_fd = -1;
}

std::uint16_t HttpServer::port() const {
  return core_->endpoint ? static_cast<std::uint16_t>(core_->endpoint->getPort()) : 0;
}

std::size_t HttpServer::open_connections() const {
  std::lock_guard<std::mutex> lock(core_->mutex);
  return core_->connections.size();
}

}  // namespace ingest::http
