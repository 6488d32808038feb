// bench_insert: the PostgreSQL ceiling. Inserts the workload's unique rows
// (what reaches the database once the broker dropped the duplicates) in
// batches, one transaction per batch, with the processor's statement shape
// (INSERT ... SELECT FROM unnest($1::text[], ...) ON CONFLICT (topic,
// event_id) DO NOTHING RETURNING stream_seq) into a scratch copy of the
// events table (same columns, indexes and constraints), which it drops.
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
         "ON CONFLICT (topic, event_id) DO NOTHING\n"
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
  std::vector<Row> rows;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (!duplicate[i]) rows.push_back({events[i], rows.size() + 1});
  }
  std::vector<std::vector<const Row*>> batches;
  for (std::size_t i = 0; i < rows.size(); i += workload.batch) {
    std::vector<const Row*> batch;
    for (std::size_t j = i; j < std::min(rows.size(), i + workload.batch); ++j)
      batch.push_back(&rows[j]);
    batches.push_back(std::move(batch));
  }

  const std::string table = scratch_name("loadtest_insert");
  pqxx::connection admin(url);
  {
    // A copy of the real table (columns, defaults, indexes, constraints),
    // with a sequence of its own so the real one is not consumed.
    pqxx::work tx(admin);
    tx.exec0("CREATE TABLE " + table + " (LIKE events INCLUDING ALL)");
    tx.exec0("CREATE SEQUENCE " + table + "_id_seq OWNED BY " + table + ".id");
    tx.exec0("ALTER TABLE " + table + " ALTER COLUMN id SET DEFAULT nextval('" + table +
             "_id_seq')");
    tx.commit();
  }
  auto drop = [&] {
    pqxx::work tx(admin);
    tx.exec0("DROP TABLE IF EXISTS " + table);
    tx.commit();
  };

  std::vector<std::unique_ptr<pqxx::connection>> conns;
  try {
    for (std::size_t c = 0; c < connections; ++c) {
      conns.push_back(std::make_unique<pqxx::connection>(url));
      conns.back()->prepare("bench_insert", insert_sql(table));
    }
  } catch (...) {
    drop();
    throw;
  }
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> inserted{0};
  std::atomic<bool> failed{false};
  std::string first_error;
  std::mutex error_mutex;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (std::size_t c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      for (std::size_t b = next++; b < batches.size() && !failed.load(); b = next++) {
        try {
          inserted += write_batch(*conns[c], batches[b]);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (!failed.exchange(true)) first_error = e.what();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = seconds_since(start);
  conns.clear();
  drop();
  if (failed.load() || inserted.load() != rows.size()) {
    std::cerr << "bench_insert: inserted " << inserted.load() << " of " << rows.size() << " rows"
              << (first_error.empty() ? "" : ": " + first_error) << "\n";
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
