// bench_insert: the PostgreSQL ceiling. Inserts the workload's unique rows
// (what reaches the database once the broker dropped the duplicates) in
// batches, one transaction per batch, with the processor's statement shape
// (INSERT ... SELECT FROM unnest($1::text[], ...) ON CONFLICT DO NOTHING
// RETURNING stream_seq) into a scratch copy of one partition of the events
// table (its columns, compression, indexes and UNIQUE (key_hash)), which it
// drops.
#include <algorithm>
#include <atomic>
#include <iostream>
#include <mutex>
#include <pqxx/pqxx>
#include <thread>

#include "bench_common.hpp"
#include "processor/batch_writer.hpp"

namespace {

using namespace loadtest::bench;

struct Row {
  pipeline::Event event;
  std::uint64_t stream_seq;
};

std::string insert_sql(const std::string& table) {
  return "INSERT INTO " + table +
         " (topic, event_id, ts, source, payload, stream_seq)\n"
         "SELECT topic, event_id, ts, source, payload, stream_seq\n"
         "FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::jsonb[], "
         "$6::bigint[])\n"
         "     AS input(topic, event_id, ts, source, payload, stream_seq)\n"
         "ON CONFLICT (key_hash) DO NOTHING\n"
         "RETURNING stream_seq";
}

// One transaction for one batch, built the way BatchWriter builds it.
std::size_t write_batch(pqxx::connection& conn, std::vector<const Row*> rows) {
  std::sort(rows.begin(), rows.end(), [](const Row* a, const Row* b) {
    return std::tie(a->event.topic, a->event.event_id) <
           std::tie(b->event.topic, b->event.event_id);
  });
  std::vector<std::string> topics, ids, timestamps, sources, payloads, seqs;
  for (const Row* r : rows) {
    topics.push_back(r->event.topic);
    ids.push_back(r->event.event_id);
    timestamps.push_back(r->event.timestamp);
    sources.push_back(r->event.source);
    payloads.push_back(r->event.payload_json);
    seqs.push_back(std::to_string(r->stream_seq));
  }
  pqxx::work tx(conn);
  const pqxx::result inserted =
      tx.exec_prepared("bench_insert", processor::to_pg_array(topics), processor::to_pg_array(ids),
                       processor::to_pg_array(timestamps), processor::to_pg_array(sources),
                       processor::to_pg_array(payloads), processor::to_pg_array(seqs));
  tx.commit();
  return inserted.size();
}

// The rows that reach the database: the workload's unique events, numbered
// as the stream would number them.
std::vector<Row> unique_rows(const std::vector<pipeline::Event>& events,
                             const std::vector<bool>& duplicate) {
  std::vector<Row> rows;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (!duplicate[i]) rows.push_back({events[i], rows.size() + 1});
  }
  return rows;
}

std::vector<std::vector<const Row*>> split_into_batches(const std::vector<Row>& rows,
                                                        std::size_t batch_size) {
  std::vector<std::vector<const Row*>> batches;
  for (std::size_t i = 0; i < rows.size(); i += batch_size) {
    std::vector<const Row*> batch;
    for (std::size_t j = i; j < std::min(rows.size(), i + batch_size); ++j)
      batch.push_back(&rows[j]);
    batches.push_back(std::move(batch));
  }
  return batches;
}

void create_scratch_table(pqxx::connection& admin, const std::string& table) {
  // A copy of one partition of the real table (columns, defaults,
  // compression, the partitioned indexes, and the UNIQUE (key_hash) each
  // partition has), with a sequence of its own so the real one is not
  // consumed.
  pqxx::work tx(admin);
  tx.exec0("CREATE TABLE " + table + " (LIKE events INCLUDING ALL)");
  tx.exec0("ALTER TABLE " + table + " ADD UNIQUE (key_hash)");
  tx.exec0("CREATE SEQUENCE " + table + "_id_seq OWNED BY " + table + ".id");
  tx.exec0("ALTER TABLE " + table + " ALTER COLUMN id SET DEFAULT nextval('" + table + "_id_seq')");
  tx.commit();
}

// `count` connections, each with the insert statement prepared.
std::vector<std::unique_ptr<pqxx::connection>> open_connections(const std::string& url,
                                                                const std::string& table,
                                                                std::size_t count) {
  std::vector<std::unique_ptr<pqxx::connection>> conns;
  for (std::size_t c = 0; c < count; ++c) {
    conns.push_back(std::make_unique<pqxx::connection>(url));
    conns.back()->prepare("bench_insert", insert_sql(table));
  }
  return conns;
}

struct InsertCounts {
  std::size_t inserted = 0;
  bool failed = false;
  std::string first_error;
};

// The timed part: a thread per connection takes the next batch until none is
// left (or a batch failed).
InsertCounts insert_batches(const std::vector<std::unique_ptr<pqxx::connection>>& conns,
                            const std::vector<std::vector<const Row*>>& batches) {
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> inserted{0};
  std::atomic<bool> failed{false};
  std::string first_error;
  std::mutex error_mutex;
  std::vector<std::thread> threads;
  threads.reserve(conns.size());
  for (const auto& conn : conns) {
    threads.emplace_back([&, conn = conn.get()] {
      for (std::size_t b = next++; b < batches.size() && !failed.load(); b = next++) {
        try {
          inserted += write_batch(*conn, batches[b]);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (!failed.exchange(true)) first_error = e.what();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return {inserted.load(), failed.load(), first_error};
}

int run(int argc, char** argv) {
  loadtest::Flags flags("bench_insert",
                        "PostgreSQL batch INSERT ... ON CONFLICT DO NOTHING, alone.");
  flags.add("database-url", "postgresql://postgres@127.0.0.1:55432/events", "the stack's database");
  flags.add("connections", "2",
            "connections inserting at once (the processor's PROCESSOR_WORKERS)");
  add_workload_flags(flags);
  if (!flags.parse(argc, argv)) return 0;
  const auto workload = workload_from_flags(flags);
  const auto connections = static_cast<std::size_t>(flags.integer("connections", 1, 64));
  const std::string url = flags.str("database-url");

  std::vector<bool> duplicate;
  const auto events = normalized_events(workload, &duplicate);
  const std::vector<Row> rows = unique_rows(events, duplicate);
  const auto batches = split_into_batches(rows, workload.batch);

  const std::string table = scratch_name("loadtest_insert");
  pqxx::connection admin(url);
  create_scratch_table(admin, table);
  auto drop = [&] {
    pqxx::work tx(admin);
    tx.exec0("DROP TABLE IF EXISTS " + table);
    tx.commit();
  };

  std::vector<std::unique_ptr<pqxx::connection>> conns;
  try {
    conns = open_connections(url, table, connections);
  } catch (...) {
    drop();
    throw;
  }
  const auto start = Clock::now();
  const InsertCounts counts = insert_batches(conns, batches);
  const double seconds = seconds_since(start);
  conns.clear();
  drop();
  if (counts.failed || counts.inserted != rows.size()) {
    std::cerr << "bench_insert: inserted " << counts.inserted << " of " << rows.size() << " rows"
              << (counts.first_error.empty() ? "" : ": " + counts.first_error) << "\n";
    return 1;
  }
  report("insert",
         {{"rows", rows.size()},
          {"batches", batches.size()},
          {"batch", workload.batch},
          {"connections", connections},
          {"rows_per_second", static_cast<double>(rows.size()) / seconds}},
         workload.events, seconds, flags.str("json"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return guarded_main("bench_insert", [&] { return run(argc, argv); });
}
