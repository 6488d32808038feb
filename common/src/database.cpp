#include "pipeline/database.hpp"

#include <pqxx/pqxx>
#include <string_view>
#include <thread>

#include "pipeline/logging.hpp"
#include "pipeline/migrations.hpp"

namespace pipeline::db {
namespace {

// pg_advisory_lock key for migrations: any constant the schema owns.
constexpr std::int64_t kMigrationLockKey = 0x6576656e7473;  // "events"

}  // namespace

std::unique_ptr<pqxx::connection> connect(const std::string& url,
                                          std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int attempt = 1;; ++attempt) {
    try {
      return std::make_unique<pqxx::connection>(url);
    } catch (const pqxx::broken_connection& e) {
      if (std::chrono::steady_clock::now() >= deadline) throw;
      if (attempt == 1 || attempt % 20 == 0) {
        log::warn("postgres_connect_retry",
                  {{"attempt", attempt}, {"error", log::first_line(e.what())}});
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }
}

int apply_migrations(pqxx::connection& conn) {
  {
    pqxx::nontransaction lock(conn);
    // A migration (or the wait for another process's) may take longer than
    // a statement of the services may: no limit for this session.
    lock.exec("SET statement_timeout = 0");
    lock.exec("SELECT pg_advisory_lock(" + std::to_string(kMigrationLockKey) + ")");
  }
  int applied = 0;
  try {
    {
      pqxx::work tx(conn);
      tx.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations ("
          " version INTEGER PRIMARY KEY,"
          " name TEXT NOT NULL,"
          " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
      tx.commit();
    }
    for (const Migration& migration : embedded_migrations()) {
      pqxx::work tx(conn);
      const pqxx::result done =
          tx.exec_params("SELECT 1 FROM schema_migrations WHERE version = $1", migration.version);
      if (!done.empty()) continue;
      tx.exec(migration.sql);
      tx.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                     migration.version, std::string(migration.name));
      tx.commit();
      ++applied;
      log::info("migration_applied", {{"version", migration.version}, {"name", migration.name}});
    }
  } catch (...) {
    pqxx::nontransaction unlock(conn);
    unlock.exec("SELECT pg_advisory_unlock(" + std::to_string(kMigrationLockKey) + ")");
    throw;
  }
  pqxx::nontransaction unlock(conn);
  unlock.exec("SELECT pg_advisory_unlock(" + std::to_string(kMigrationLockKey) + ")");
  return applied;
}

std::string sqlstate_of(const std::exception& error) {
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&error)) return sql->sqlstate();
  return {};
}

FailureKind classify_failure(const std::exception& error) {
  // Checked first: in_doubt_error is a pqxx::failure like broken_connection.
  if (dynamic_cast<const pqxx::in_doubt_error*>(&error) != nullptr) {
    return FailureKind::kOutcomeUnknown;
  }
  // libpqxx 6.4 throws broken_connection for SQLSTATE class 08 and for
  // too_many_connections (53300) as well.
  if (dynamic_cast<const pqxx::broken_connection*>(&error) != nullptr) {
    return FailureKind::kUnavailable;
  }
  const std::string state = sqlstate_of(error);
  if (state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03") {
    return FailureKind::kUnavailable;
  }
  // A row whose partition of events is not made yet (23514, as a CHECK
  // violation): the processor makes partitions ahead, and the next attempt
  // finds it.
  if (state == "23514" &&
      std::string_view(error.what()).find("no partition of relation") != std::string_view::npos) {
    return FailureKind::kRetryLater;
  }
  if (state.rfind("22", 0) == 0 || state.rfind("23", 0) == 0 || state.rfind("54", 0) == 0) {
    return FailureKind::kNeverStorable;
  }
  // Everything else passes, or may: never drop an accepted event for it.
  // (transaction_rollback, class 40, carries no SQLSTATE in libpqxx 6.4.)
  return FailureKind::kRetryLater;
}

const char* failure_name(FailureKind kind) {
  switch (kind) {
    case FailureKind::kUnavailable:
      return "unavailable";
    case FailureKind::kRetryLater:
      return "retry_later";
    case FailureKind::kOutcomeUnknown:
      return "outcome_unknown";
    case FailureKind::kNeverStorable:
      return "never_storable";
  }
  return "unknown";
}

std::int64_t read_counter(pqxx::connection& conn, const std::string& name) {
  pqxx::read_transaction tx(conn);
  const pqxx::result r =
      tx.exec_params("SELECT COALESCE(SUM(value), 0) FROM pipeline_counters WHERE name = $1", name);
  return r[0][0].as<std::int64_t>();
}

}  // namespace pipeline::db
