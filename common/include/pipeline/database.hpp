#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <pqxx/connection>

namespace pipeline::db {

/// Opens a connection, retrying (with a log line) until `timeout` passes.
/// Throws pqxx::broken_connection when the server never answers.
std::unique_ptr<pqxx::connection> connect(const std::string& url,
                                          std::chrono::milliseconds timeout);

/// Applies every embedded migration not yet in schema_migrations, each in its
/// own transaction, under an advisory lock so that processes starting at once
/// do not race. Returns how many it applied. Throws pqxx errors.
int apply_migrations(pqxx::connection& conn);

/// True for failures a retry on a fresh connection can fix: a broken
/// connection, a serialization failure or deadlock, the server shutting down
/// or out of connections.
bool is_transient(const std::exception& error);

/// Sum of one durable counter over its shards.
std::int64_t read_counter(pqxx::connection& conn, const std::string& name);

}  // namespace pipeline::db
