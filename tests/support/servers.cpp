#include "servers.hpp"
#include <csignal>
#include <fstream>
#include <sstream>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

#include <pqxx/pqxx>

namespace testsupport {
namespace fs = std::filesystem;

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe)
  std::string templ = std::string(base != nullptr ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

// A port below Linux's ephemeral range (32768-), where the kernel would pick
// it as the source port of an outgoing connection (any test's connection to
// nats-server or PostgreSQL) before the server binds it. Never the same port
// twice in one process; bound once to check that nobody holds it.
int connect_loopback(std::uint16_t port, int receive_buffer) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (receive_buffer > 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int listen_loopback(std::uint16_t* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 256) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot listen on 127.0.0.1");
  }
  socklen_t length = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  *port = ntohs(addr.sin_port);
  return fd;
}

std::uint16_t free_port() {
  static std::mutex mutex;
  static std::set<std::uint16_t> handed_out;
  static std::mt19937 random(std::random_device{}());
  std::lock_guard<std::mutex> lock(mutex);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const auto port = static_cast<std::uint16_t>(20000 + random() % 12000);
    if (handed_out.count(port) != 0) continue;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (free) {
      handed_out.insert(port);
      return port;
    }
  }
  throw std::runtime_error("no free port below the ephemeral range");
}

bool port_open(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Process::Process(const std::vector<std::string>& argv, const std::string& log_path,
                 const std::vector<std::string>& extra_env, const std::string& run_as_user) {
  uid_t uid = 0;
  gid_t gid = 0;
  if (!run_as_user.empty()) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): test set-up, before any thread
    const passwd* pw = ::getpwnam(run_as_user.c_str());
    if (pw == nullptr) throw std::runtime_error("no user " + run_as_user);
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log >= 0) {
      ::dup2(log, 1);
      ::dup2(log, 2);
    }
    // In the forked child, which has one thread.
    for (const auto& e : extra_env) ::putenv(const_cast<char*>(e.c_str()));  // NOLINT
    if (!run_as_user.empty()) {
      if (::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(126);
    }
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
}

Process::~Process() {
  if (pid_ > 0) stop(SIGKILL);
}

Process::Process(Process&& other) noexcept : pid_(other.pid_) { other.pid_ = -1; }

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) stop(SIGKILL);
    pid_ = other.pid_;
    other.pid_ = -1;
  }
  return *this;
}

bool Process::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int Process::stop(int signal, std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, signal);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  return status;
}

TmpfsMount::TmpfsMount(std::size_t bytes) : dir_("tmpfs") {
  const std::string options = "size=" + std::to_string(bytes) + ",mode=0777";
  if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) != 0) {
    throw std::runtime_error("cannot mount a tmpfs on " + dir_.path() + " (" +
                             // NOLINTNEXTLINE(concurrency-mt-unsafe): one thread mounts
                             std::strerror(errno) + "): the disk-full fault needs root");
  }
}

TmpfsMount::~TmpfsMount() {
  // A server still running on it keeps it busy: detach lazily.
  ::umount2(dir_.path().c_str(), MNT_DETACH);
}

std::size_t TmpfsMount::free_bytes() const {
  struct statvfs st {};
  if (::statvfs(dir_.path().c_str(), &st) != 0) return 0;
  return static_cast<std::size_t>(st.f_bavail) * st.f_frsize;
}

void TmpfsMount::fill(std::size_t leave) {
  const std::string ballast = dir_.path() + "/ballast";
  const int fd = ::open(ballast.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + ballast);
  std::vector<char> block(std::size_t{64} * 1024, 'x');
  while (free_bytes() > leave) {
    const std::size_t want = std::min(block.size(), free_bytes() - leave);
    if (::write(fd, block.data(), std::max<std::size_t>(want, 1)) <= 0) break;
  }
  ::close(fd);
}

void TmpfsMount::make_room() { ::unlink((dir_.path() + "/ballast").c_str()); }

NatsServer::NatsServer() : dir_("nats-test"), port_(free_port()), store_(dir_.path() + "/store") {
  start();
}

NatsServer::NatsServer(std::vector<std::string> extra_args, std::uint16_t port,
                       const std::string& store_parent)
    : dir_("nats-test"),
      port_(port),
      extra_args_(std::move(extra_args)),
      store_((store_parent.empty() ? dir_.path() : store_parent) + "/store") {
  start();
}

NatsServer::~NatsServer() { stop(); }

void NatsServer::start() {
  std::vector<std::string> args = {"nats-server",         "-js", "-a",  "127.0.0.1", "-p",
                                   std::to_string(port_), "-sd", store_};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  process_ = Process(args, dir_.path() + "/nats.log");
  if (!wait_until([&] { return port_open(port_); }, std::chrono::seconds(20))) {
    throw std::runtime_error("nats-server did not start; see " + dir_.path() + "/nats.log");
  }
}

void NatsServer::kill9() { process_.kill9(); }
void NatsServer::stop() { process_.stop(SIGTERM); }

std::string postgres_bindir() {
  if (const char* dir = std::getenv("PG_BINDIR")) return dir;  // NOLINT(concurrency-mt-unsafe)
  std::string best;
  int best_version = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const int version = static_cast<int>(std::strtol(entry.path().filename().c_str(), nullptr, 10));
    if (version > best_version && fs::exists(entry.path() / "bin" / "initdb")) {
      best_version = version;
      best = (entry.path() / "bin").string();
    }
  }
  if (best.empty()) throw std::runtime_error("no PostgreSQL server found (set PG_BINDIR)");
  return best;
}

PostgresCluster::PostgresCluster(const std::string& data_parent)
    : dir_("pg-test"), port_(free_port()) {
  data_dir_ = (data_parent.empty() ? dir_.path() : data_parent) + "/data";
  // initdb and postgres refuse to run as root: hand the directory to postgres.
  if (::geteuid() == 0) {
    user_ = "postgres";
    // NOLINTNEXTLINE(concurrency-mt-unsafe): test set-up, before any thread
    const passwd* pw = ::getpwnam(user_.c_str());
    if (pw == nullptr) throw std::runtime_error("running as root but there is no postgres user");
    for (const std::string& dir : {dir_.path(), data_parent}) {
      if (!dir.empty() && ::chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        throw std::runtime_error("chown of the PostgreSQL test directory failed");
      }
    }
  }
  Process initdb({postgres_bindir() + "/initdb", "-D", data_dir_, "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync", "--no-instructions"},
                 dir_.path() + "/initdb.log", {}, user_);
  const int status = initdb.stop(0, std::chrono::seconds(120));  // signal 0: just wait
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("initdb failed; see " + dir_.path() + "/initdb.log");
  }
  start();
}

PostgresCluster::~PostgresCluster() { stop(); }

void PostgresCluster::start() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  const auto accepting = [&] {
    try {
      pqxx::connection conn(url());
      return true;
    } catch (const std::exception&) {
      return false;
    }
  };
  while (std::chrono::steady_clock::now() < deadline) {
    process_ =
        Process({postgres_bindir() + "/postgres", "-D", data_dir_, "-p", std::to_string(port_),
                 "-k", dir_.path(), "-c", "listen_addresses=127.0.0.1",
                 // fsync=off only risks data on an OS crash, which no test makes.
                 // synchronous_commit stays on: with it off, a COMMIT can return
                 // before its WAL leaves shared memory, and a killed postmaster
                 // loses it after the processor acked (the chaos test caught it).
                 "-c", "fsync=off", "-c", "max_connections=200"},
                dir_.path() + "/postgres.log", {}, user_);
    // Up, or exited (after a kill -9 the old backends may still hold the
    // shared memory for a moment): then try again.
    wait_until([&] { return accepting() || !process_.running(); }, std::chrono::seconds(30));
    if (process_.running() && accepting()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  throw std::runtime_error("postgres did not start; see " + dir_.path() + "/postgres.log");
}

void PostgresCluster::kill9() { process_.kill9(); }

void PostgresCluster::stop() { process_.stop(SIGINT); }

int PostgresCluster::freeze(bool stop) {
  const pid_t postmaster = process_.pid();
  if (postmaster <= 0) return 0;
  std::vector<pid_t> targets{postmaster};
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string content;
    std::getline(in, content);
    const auto close = content.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(content.substr(close + 2));
    std::string state;
    pid_t parent = 0;
    fields >> state >> parent;
    if (parent == postmaster) targets.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  // The children first when stopping (none can then be started), the
  // postmaster first when resuming.
  if (stop) std::reverse(targets.begin(), targets.end());
  int signalled = 0;
  for (const pid_t pid : targets) signalled += ::kill(pid, stop ? SIGSTOP : SIGCONT) == 0 ? 1 : 0;
  return signalled;
}

std::string PostgresCluster::url(const std::string& database) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + database +
         " connect_timeout=5";
}

std::string PostgresCluster::create_database() {
  std::string name = "test_" + std::to_string(::getpid()) + "_" + std::to_string(++databases_);
  pqxx::connection conn(url());
  pqxx::nontransaction tx(conn);
  tx.exec("CREATE DATABASE " + name);
  return name;
}

}  // namespace testsupport
