#include "http/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "http/connection.hpp"
#include "http/event_loop.hpp"
#include "pipeline/logging.hpp"

namespace ingest::http {

// --- Responder ---------------------------------------------------------------

Responder::Responder(std::shared_ptr<Connection> connection, std::uint64_t slot, int version_minor,
                     bool keep_alive, bool head, std::size_t held_bytes)
    : connection_(std::move(connection)),
      slot_(slot),
      version_minor_(version_minor),
      keep_alive_(keep_alive),
      head_(head),
      held_bytes_(held_bytes) {}

Responder::Responder(Responder&& other) noexcept
    : connection_(std::move(other.connection_)),
      slot_(other.slot_),
      version_minor_(other.version_minor_),
      keep_alive_(other.keep_alive_),
      head_(other.head_),
      held_bytes_(other.held_bytes_),
      on_sent_(std::move(other.on_sent_)) {}

Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (connection_) send(json_error(500, "internal error: request not answered"));
    connection_ = std::move(other.connection_);
    slot_ = other.slot_;
    version_minor_ = other.version_minor_;
    keep_alive_ = other.keep_alive_;
    head_ = other.head_;
    held_bytes_ = other.held_bytes_;
    on_sent_ = std::move(other.on_sent_);
  }
  return *this;
}

Responder::~Responder() {
  if (connection_) send(json_error(500, "internal error: request not answered"));
}

void Responder::send(Response&& response) {
  if (!connection_) return;
  std::shared_ptr<Connection> connection = std::move(connection_);
  if (on_sent_) {
    auto callback = std::move(on_sent_);
    callback(response.status);
  }
  connection->respond(slot_, response, version_minor_, keep_alive_, head_, held_bytes_);
}

std::shared_ptr<ResponseStream> Responder::stream(const Response& head) {
  if (!connection_) return nullptr;
  std::shared_ptr<Connection> connection = std::move(connection_);
  connection->respond_stream(slot_, head, version_minor_, held_bytes_);
  return std::make_shared<ResponseStream>(std::move(connection), std::move(on_sent_));
}

// --- The listener ----------------------------------------------------------------

namespace {

// strerror() is not thread-safe; std::system_category() is.
std::string error_text(int error) { return std::system_category().message(error); }

// Accepts connections (on the first loop's thread) and hands each to a loop
// in turn.
class Listener final : public LoopClient {
 public:
  Listener(int fd, std::shared_ptr<SharedState> shared,
           std::vector<std::shared_ptr<EventLoop>> loops)
      : fd_(fd), shared_(std::move(shared)), loops_(std::move(loops)) {}

  void on_events(std::uint32_t /*events*/) override {
    // At most a batch per wake-up, so the loop's own connections get turns.
    for (int i = 0; i < 64; ++i) {
      sockaddr_storage address{};
      socklen_t length = sizeof address;
      const int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&address), &length,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: stop accepting for a tick (level-triggered,
          // the listener would otherwise spin).
          log_throttled("accept_failed", errno);
          pause_until_ = Clock::now() + std::chrono::milliseconds(100);
          loops_.front()->modify(fd_, id_, 0);
        }
        return;
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      const std::size_t open = ++shared_->connections;
      auto connection = std::make_shared<Connection>(shared_, loops_[next_++ % loops_.size()], fd,
                                                     host_of(address));
      std::optional<std::pair<int, std::string>> refuse;
      if (open > shared_->limits.max_connections) {
        // Said, then closed: the connection counts only until then.
        log_throttled("connection_refused", 0);
        refuse.emplace(503, "too many connections (INGEST_MAX_CONNECTIONS); retry later");
      }
      connection->open(std::move(refuse));
    }
  }

  void tick(Clock::time_point now) override {
    if (pause_until_ && now >= *pause_until_) {
      pause_until_.reset();
      loops_.front()->modify(fd_, id_, EPOLLIN);
    }
  }

  void set_id(std::uint64_t id) { id_ = id; }

 private:
  static std::string host_of(const sockaddr_storage& address) {
    char text[INET6_ADDRSTRLEN] = {};
    if (address.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&address);
      ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    } else if (address.ss_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&address);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    }
    return text;
  }

  void log_throttled(const char* event, int error) {
    if (refused_++ % 1000 != 0) return;
    if (error != 0) {
      pipeline::log::warn(event, {{"error", error_text(error)}, {"times", refused_}});
    } else {
      pipeline::log::warn(event, {{"reason", "INGEST_MAX_CONNECTIONS"},
                                  {"limit", shared_->limits.max_connections},
                                  {"refused", refused_}});
    }
  }

  const int fd_;
  std::shared_ptr<SharedState> shared_;
  std::vector<std::shared_ptr<EventLoop>> loops_;
  std::uint64_t id_ = 0;
  std::size_t next_ = 0;
  std::uint64_t refused_ = 0;
  std::optional<Clock::time_point> pause_until_;
};

int listen_on(const std::string& host, std::uint16_t port) {
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* in = reinterpret_cast<sockaddr_in*>(&address);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (::inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    length = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    length = sizeof(sockaddr_in6);
  } else {
    throw std::runtime_error("INGEST_HTTP_ADDRESS: not an IPv4 or IPv6 address: " + host);
  }
  const int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + error_text(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::listen(fd, SOMAXCONN) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                             error_text(error));
  }
  return fd;
}

}  // namespace

// --- HttpServer ------------------------------------------------------------------

struct HttpServer::Core {
  std::string address;
  std::uint16_t requested_port = 0;
  std::shared_ptr<SharedState> shared;
  int listen_fd = -1;
  std::uint16_t port = 0;
  std::vector<std::shared_ptr<EventLoop>> loops;
  std::shared_ptr<Listener> listener;
  std::uint64_t listener_id = 0;
  bool started = false;
};

HttpServer::HttpServer(std::string address, std::uint16_t port, ServerLimits limits,
                       RequestHandler handler, StreamPredicate may_stream)
    : core_(std::make_unique<Core>()) {
  core_->address = std::move(address);
  core_->requested_port = port;
  core_->shared = std::make_shared<SharedState>();
  core_->shared->limits = limits;
  core_->shared->handler = std::move(handler);
  core_->shared->may_stream = std::move(may_stream);
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  core_->listen_fd = listen_on(core_->address, core_->requested_port);
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  ::getsockname(core_->listen_fd, reinterpret_cast<sockaddr*>(&bound), &length);
  core_->port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  const std::size_t threads = std::max<std::size_t>(1, core_->shared->limits.threads);
  for (std::size_t i = 0; i < threads; ++i) {
    core_->loops.push_back(std::make_shared<EventLoop>(kTick, kReadChunk));
  }
  core_->listener = std::make_shared<Listener>(core_->listen_fd, core_->shared, core_->loops);
  core_->listener_id = core_->loops.front()->add(core_->listen_fd, EPOLLIN, core_->listener);
  core_->listener->set_id(core_->listener_id);
  for (const auto& loop : core_->loops) loop->start();
  core_->started = true;
}

void HttpServer::stop() {
  if (!core_ || !core_->started) return;
  core_->started = false;
  // No new connection, then every open one cut, then the threads joined.
  core_->loops.front()->remove(core_->listen_fd, core_->listener_id);
  ::close(core_->listen_fd);
  core_->listen_fd = -1;
  for (const auto& loop : core_->loops) loop->stop();
  for (const auto& loop : core_->loops) {
    for (const auto& client : loop->clients()) {
      if (auto connection = std::dynamic_pointer_cast<Connection>(client)) connection->shut_down();
    }
  }
  core_->listener.reset();
  // The loops live on while a Responder or stream still holds a connection.
  core_->loops.clear();
}

std::uint16_t HttpServer::port() const { return core_->started ? core_->port : 0; }

std::size_t HttpServer::open_connections() const { return core_->shared->connections.load(); }

}  // namespace ingest::http
