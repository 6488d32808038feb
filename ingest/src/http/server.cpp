#include "http/server.hpp"

#include "http/connection.hpp"
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

void Responder::send(Response&& response) {
  if (!connection_) return;
  std::shared_ptr<Connection> connection = std::move(connection_);
  if (on_sent_) {
    auto callback = std::move(on_sent_);
    callback(response.status);
  }
  connection->respond(slot_, response, version_minor_, keep_alive_, head_);
}

std::shared_ptr<ResponseStream> Responder::stream(const Response& head) {
  if (!connection_) return nullptr;
  std::shared_ptr<Connection> connection = std::move(connection_);
  connection->respond_stream(slot_, head, version_minor_);
  return std::make_shared<ResponseStream>(std::move(connection), std::move(on_sent_));
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
