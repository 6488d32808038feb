#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <pqxx/connection>

namespace pipeline::db {

/// The time limits of a database session.
struct SessionLimits {
  /// The server cancels a statement running longer (SQLSTATE 57014); 0: none.
  std::chrono::milliseconds statement_timeout{10000};
  /// Connecting (TCP, TLS, authentication) gives up after this; libpq
  /// counts whole seconds, at least 2.
  std::chrono::milliseconds connect_timeout{5000};
};

/// `url` (a postgresql:// URI or a key=value string) with libpq's time
/// limits added, each unless `url` sets it already (a connect_timeout
/// longer than the limit's is lowered to it: connecting comes before any
/// Deadline can watch the socket): connect_timeout,
/// keepalives (probes after 5 s idle, every 2 s, 3 of them: a peer that is
/// gone is noticed in about 11 s), tcp_user_timeout (data unacknowledged
/// for 10 s ends the connection) and the session's statement_timeout (as
/// `options`). None of them helps against a server that the kernel still
/// answers for but that says nothing (a stopped process, a proxy that
/// stopped forwarding): Deadline does.
std::string session_url(const std::string& url, const SessionLimits& limits);

/// A client-side deadline on what is done with `conn` while it lives: once
/// `timeout` has passed, the connection's socket is shut down, so that a
/// call waiting on a server that does not answer fails at once with
/// pqxx::broken_connection (pqxx::in_doubt_error during COMMIT) instead of
/// waiting forever. The connection is unusable afterwards. One thread, shared
/// by every Deadline of the process, watches them.
class Deadline {
 public:
  Deadline(pqxx::connection& conn, std::chrono::milliseconds timeout);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  /// True once the socket was shut down.
  bool expired() const;

 private:
  std::uint64_t id_;
};

/// Opens a connection, retrying (with a log line) until `timeout` passes.
/// Throws pqxx::broken_connection when the server never answers.
std::unique_ptr<pqxx::connection> connect(const std::string& url,
                                          std::chrono::milliseconds timeout);

/// Applies every embedded migration not yet in schema_migrations, each in its
/// own transaction, under an advisory lock so that processes starting at once
/// do not race. Returns how many it applied. Throws pqxx errors.
int apply_migrations(pqxx::connection& conn);

/// What a failed database write means for the messages it carried. This is
/// the one place the processor's errors are classified; every path (a batch,
/// one message alone, a dead letter) acts on it.
enum class FailureKind {
  /// The connection is gone (broken, SQLSTATE class 08, the server shutting
  /// down with 57P01..57P03, too many connections): nothing can be written
  /// on it. Retry every message later, on a new connection.
  kUnavailable,
  /// The statement failed for a reason that passes: disk full or out of
  /// memory (class 53), an I/O error (58), read-only after a failover
  /// (25006), a deadlock or serialization failure (40), a lock not available
  /// (55), a cancelled query (57014), a missing table or right (42), an
  /// exception raised by a trigger (P0), an internal error (XX), anything not
  /// classified. It may concern one message only, so the messages are tried
  /// one by one, and each that fails this way is retried later.
  kRetryLater,
  /// The connection broke while COMMIT was under way: the batch may or may
  /// not have committed. Retry; stored rows are recognised by their stream
  /// sequence, so a retry never stores or counts twice.
  kOutcomeUnknown,
  /// The data of the message itself is invalid for the schema: a data
  /// exception (22), an integrity constraint (23) or a program limit such as
  /// an index row too large (54). No retry can store it: dead letter.
  kNeverStorable,
};

/// Classifies a failure of a database operation (any exception).
FailureKind classify_failure(const std::exception& error);

/// The SQLSTATE of a pqxx::sql_error, "" for any other exception.
std::string sqlstate_of(const std::exception& error);

/// A fixed name for each kind, for logs and metric labels.
const char* failure_name(FailureKind kind);

/// Sum of one durable counter over its shards.
std::int64_t read_counter(pqxx::connection& conn, const std::string& name);

}  // namespace pipeline::db
