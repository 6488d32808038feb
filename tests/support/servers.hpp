#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace testsupport {

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// A tmpfs of `bytes` mounted on a fresh temporary directory (tests run as
/// root), for real disk-full faults: fill() leaves only a little room,
/// make_room() gives it back. Throws when it cannot mount: a fault that
/// cannot be carried out fails its test.
class TmpfsMount {
 public:
  explicit TmpfsMount(std::size_t bytes);
  ~TmpfsMount();
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  const std::string& path() const { return dir_.path(); }
  /// Writes a ballast file until at most `leave` bytes are free.
  void fill(std::size_t leave = 0);
  /// Removes the ballast.
  void make_room();
  /// Bytes free now.
  std::size_t free_bytes() const;

 private:
  TempDir dir_;
};

/// A TCP port on 127.0.0.1 that was free a moment ago.
std::uint16_t free_port();

/// True once something accepts TCP connections on 127.0.0.1:port.
bool port_open(std::uint16_t port);

/// A blocking TCP connection to 127.0.0.1:port, or -1 when refused.
/// `receive_buffer` > 0 sets SO_RCVBUF first (so the window the client
/// offers is small from the start).
int connect_loopback(std::uint16_t port, int receive_buffer = 0);

/// A listening socket on 127.0.0.1 at a port the kernel picks (in *port).
/// Throws when it cannot listen.
int listen_loopback(std::uint16_t* port);

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

/// A child process. Its stdout and stderr go to `log_path`.
class Process {
 public:
  Process() = default;
  Process(const std::vector<std::string>& argv, const std::string& log_path,
          const std::vector<std::string>& extra_env = {}, const std::string& run_as_user = "");
  ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;

  pid_t pid() const { return pid_; }
  bool running();
  /// Sends `signal` and waits for the exit (SIGKILL after `grace`). Returns the exit status.
  int stop(int signal, std::chrono::milliseconds grace = std::chrono::seconds(20));
  void kill9() { stop(9); }

 private:
  pid_t pid_ = -1;
};

/// A nats-server with JetStream on a free loopback port, storing under a
/// temporary directory. restart() keeps the store.
class NatsServer {
 public:
  NatsServer();
  /// With extra arguments (e.g. cluster settings) on a given port; the store
  /// goes under `store_parent` when given (a tmpfs, say).
  NatsServer(std::vector<std::string> extra_args, std::uint16_t port,
             const std::string& store_parent = "");
  ~NatsServer();
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  std::uint16_t port() const { return port_; }
  void start();
  void kill9();
  void stop();

 private:
  TempDir dir_;
  std::uint16_t port_;
  std::vector<std::string> extra_args_;
  std::string store_;
  Process process_;
};

/// A throwaway PostgreSQL cluster (initdb in a temporary directory), run as
/// the postgres user when the tests run as root, on a free loopback port.
class PostgresCluster {
 public:
  /// The data directory goes under `data_parent` when given (a tmpfs, say).
  explicit PostgresCluster(const std::string& data_parent = "");
  ~PostgresCluster();
  std::uint16_t port() const { return port_; }
  /// A connection string for `database` on this cluster.
  std::string url(const std::string& database = "postgres") const;
  /// Creates an empty database and returns its name.
  std::string create_database();
  /// Starts the postmaster and waits until it takes connections. After a
  /// kill -9 it retries while the old backends are still going away.
  void start();
  void kill9();
  void stop();
  pid_t pid() const { return process_.pid(); }
  /// SIGSTOP (true) or SIGCONT (false) to the postmaster and every process
  /// it started: the whole cluster stops answering while the kernel keeps
  /// its sockets open. Returns how many processes were signalled.
  int freeze(bool stop);
  /// The server's own log.
  std::string log_path() const { return dir_.path() + "/postgres.log"; }

 private:
  TempDir dir_;
  std::string data_dir_;
  std::string user_;
  std::uint16_t port_;
  Process process_;
  int databases_ = 0;
};

/// Directory of PostgreSQL's server programs (initdb, postgres), found under
/// /usr/lib/postgresql/<version>/bin or taken from $PG_BINDIR.
std::string postgres_bindir();

}  // namespace testsupport
