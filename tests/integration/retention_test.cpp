// The events table by arrival partitions (issue 20), on real servers: made
// ahead of time, dropped whole by age and by size and nothing else removed;
// a key stays unique across partitions, also when copies race at a bound;
// a repeat of an expired event is stored again; the stream's acked events
// make room at its byte bound.
#include <gtest/gtest.h>
#include <nats/nats.h>

#include <pqxx/pqxx>
#include <thread>

#include "pipeline_fixture.hpp"
#include "processor/partitions.hpp"

namespace testsupport {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class Retention : public PipelineTest {
 protected:
  // Partitions of `interval`, dropped after `retention` (0: never), checked
  // five times a second, each sealed (its key filter built) as soon as no
  // transaction from before its end is open; the broker's duplicate window
  // short, so that a repeat reaches the database.
  void partitions(std::chrono::milliseconds interval, std::chrono::milliseconds retention,
                  std::uint64_t max_bytes = 0) {
    stream_.duplicate_window = 100ms;
    configure_processor_ = [=](processor::ProcessorConfig& config) {
      config.partitions.interval = interval;
      config.partitions.retention = retention;
      config.partitions.max_bytes = max_bytes;
      config.common.events_max_bytes = static_cast<std::int64_t>(max_bytes);
      config.retention_check_interval = 200ms;
      config.partitions.seal_margin = 0ms;
    };
  }

  std::vector<processor::Partition> list() {
    pqxx::connection conn(shared_postgres().url(database_));
    return processor::list_partitions(conn);
  }

  std::int64_t database_now_micros() {
    pqxx::connection conn(shared_postgres().url(database_));
    pqxx::nontransaction tx(conn);
    return tx.exec1("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")[0]
        .as<std::int64_t>();
  }

  // Publishes `count` events of `topic` (ids prefix-0 ...), in requests of
  // 100, each with `payload_bytes` of letters; every one must be accepted.
  void publish_events(const std::string& topic, const std::string& prefix, int count,
                      std::size_t payload_bytes = 10) {
    json batch = json::array();
    for (int i = 0; i < count; ++i) {
      batch.push_back(
          event(topic, prefix + "-" + std::to_string(i),
                {{"text", std::string(payload_bytes, static_cast<char>('a' + i % 26))}}));
      if (batch.size() == 100 || i + 1 == count) {
        const HttpResponse response = publish(batch);
        ASSERT_EQ(response.status, 200) << response.body;
        batch = json::array();
      }
    }
  }

  std::int64_t last_stored_micros(const std::string& topic) {
    pqxx::connection conn(shared_postgres().url(database_));
    pqxx::nontransaction tx(conn);
    return tx
        .exec1(
            "SELECT (extract(epoch FROM max(stored_at)) * 1000000)::bigint "
            "FROM events WHERE topic = " +
            tx.quote(topic))[0]
        .as<std::int64_t>();
  }

  // Waits until the partition that holds `topic`'s rows ends before now:
  // what is published next goes to a later partition.
  void wait_past_partition_of(const std::string& topic) {
    const std::int64_t stored = last_stored_micros(topic);
    std::int64_t end = 0;
    for (const auto& p : list()) {
      if ((!p.from_micros || *p.from_micros <= stored) && stored < p.to_micros) end = p.to_micros;
    }
    ASSERT_GT(end, 0) << "no partition holds " << topic;
    ASSERT_TRUE(wait_until([&] { return database_now_micros() > end; }, 10s));
  }

  // Waits until a second has passed since `topic`'s last row was stored:
  // ten times the broker's duplicate window.
  void wait_past_window_of(const std::string& topic) {
    const std::int64_t stored = last_stored_micros(topic);
    ASSERT_TRUE(wait_until([&] { return database_now_micros() > stored + 1'000'000; }, 10s));
  }
};

TEST_F(Retention, PartitionsAreMadeAheadAndDroppedByAgeNothingElse) {
  partitions(1s, 3s);
  start_all();
  publish_events("ret.old", "o", 30);
  wait_for_idle(30);
  // Made ahead: writes never wait for a partition.
  const auto made = list();
  ASSERT_FALSE(made.empty());
  EXPECT_GE(made.back().to_micros, database_now_micros() + 1'500'000) << made.size();
  wait_past_partition_of("ret.old");
  publish_events("ret.new", "n", 30);
  wait_for_idle(60);
  // The old events' partition goes whole once it ended 3 s ago; the newer
  // one stays until its own time.
  ASSERT_TRUE(wait_until([&] { return count_rows("topic = 'ret.old'") == 0; }, 20s))
      << count_rows("topic = 'ret.old'") << " old events left";
  EXPECT_EQ(count_rows("topic = 'ret.new'"), 30) << "retention removed events not due";
  // The counters keep what was stored, whatever expired since.
  EXPECT_EQ(stats()["unique_processed"], 60);
  ASSERT_TRUE(wait_until([&] { return count_rows("topic = 'ret.new'") == 0; }, 20s));
  for (const auto& p : list()) EXPECT_GT(p.to_micros, database_now_micros() - 4'500'000) << p.name;
}

TEST_F(Retention, ARepeatAcrossAPartitionBoundIsADuplicate) {
  partitions(1s, 0ms);
  processor_metrics_ = true;
  start_all();
  publish_events("ret.bound", "k", 50);
  wait_for_idle(50);
  wait_past_partition_of("ret.bound");
  // And past the broker's duplicate window (100 ms; nats-server forgets an
  // id only when its purge timer runs), so the repeats reach the database.
  wait_past_window_of("ret.bound");
  // The first copies' partition sealed, and its key filter in the
  // processor's hands: the repeats are looked up through it.
  pqxx::connection conn(shared_postgres().url(database_));
  const auto partition_of_first = [&] {
    pqxx::nontransaction tx(conn);
    return tx.exec1("SELECT tableoid::regclass::text FROM events WHERE event_id = 'k-0'")[0]
        .as<std::string>();
  };
  const std::string sealed = partition_of_first();
  HttpClient metrics(processor_->metrics_port());
  const auto filters_held = [&] {
    const std::string text = metrics.get("/metrics").body;
    const auto at = text.find("\npipeline_processor_key_filter_partitions ");
    return at == std::string::npos ? 0.0 : std::stod(text.substr(text.find(' ', at + 1)));
  };
  ASSERT_TRUE(wait_until(
      [&] {
        pqxx::nontransaction tx(conn);
        const int built =
            tx.exec_params1("SELECT count(*) FROM key_filters WHERE partition = $1", sealed)[0]
                .as<int>();
        // Every partition up to it holds a filter (they are sealed in order).
        const auto before = static_cast<double>(
            tx.exec_params1("SELECT count(*) FROM key_filters k JOIN pg_class c ON c.relname = "
                            "k.partition WHERE k.to_micros <= (SELECT to_micros FROM key_filters "
                            "WHERE partition = $1)",
                            sealed)[0]
                .as<int>());
        return built == 1 && filters_held() >= before;
      },
      20s))
      << "the partition " << sealed << " was never sealed and its filter never held";
  publish_events("ret.bound", "k", 50);  // the same keys, in a later partition's time
  const json s = wait_for_idle(50);
  EXPECT_EQ(count_rows("topic = 'ret.bound'"), 50);
  EXPECT_EQ(s["duplicates_by_stage"]["database"], 50) << s.dump();
  EXPECT_EQ(partition_of_first(), sealed);
}

TEST_F(Retention, RepeatsThroughTwoProcessorsOverSeveralBoundsAreStoredOnce) {
  partitions(1s, 0ms);
  start_all();
  // A second processor: copies of a key land in transactions of different
  // processes, on either side of a bound.
  auto second = std::make_unique<processor::Processor>(processor_config());
  second->start();
  constexpr int kKeys = 300;
  constexpr int kCopies = 4;
  const std::int64_t started = database_now_micros();
  std::vector<std::thread> senders;
  senders.reserve(kCopies);
  for (int copy = 0; copy < kCopies; ++copy) {
    senders.emplace_back([&, copy] {
      HttpClient client(ingest_->port());
      // Each sender walks the keys in its own order over about 3 s (several
      // bounds), 10 a request.
      for (int round = 0; round < kKeys / 10; ++round) {
        json batch = json::array();
        for (int i = 0; i < 10; ++i) {
          const int key = (round * 10 + i + copy * 77) % kKeys;
          batch.push_back(event("ret.race", "k" + std::to_string(key), {{"copy", copy}}));
        }
        client.post("/publish", batch.dump());
        std::this_thread::sleep_for(std::chrono::milliseconds(100 + copy * 7));
      }
    });
  }
  for (auto& t : senders) t.join();
  const std::int64_t ended = database_now_micros();
  const json s = wait_for_idle(kKeys, 90s);
  second.reset();
  EXPECT_EQ(count_rows("topic = 'ret.race'"), kKeys);
  pqxx::connection conn(shared_postgres().url(database_));
  pqxx::nontransaction tx(conn);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM (SELECT key_hash FROM events GROUP BY key_hash "
                     "HAVING count(*) > 1) twice")[0]
                .as<int>(),
            0);
  // The race was run: copies reached the database (past the broker's
  // window) over more than two partition bounds.
  EXPECT_GT(s["duplicates_by_stage"]["database"].get<int>(), kKeys) << s.dump();
  EXPECT_GE(ended - started, 2'000'000);
}

TEST_F(Retention, SizeBoundDropsTheOldestPartitionsFirst) {
  // About 2.2 MB per batch (1,000 events of 2 KB); a bound of 3 MB holds one.
  partitions(1s, 0ms, 3'000'000);
  start_all();
  publish_events("ret.first", "a", 1000, 2000);
  wait_for_idle(1000);
  wait_past_partition_of("ret.first");
  publish_events("ret.second", "b", 1000, 2000);
  wait_for_idle(2000);
  ASSERT_TRUE(wait_until([&] { return count_rows("topic = 'ret.first'") == 0; }, 20s))
      << "the oldest partition was not dropped at the size bound";
  EXPECT_EQ(count_rows("topic = 'ret.second'"), 1000) << "a younger partition went first";
}

// The documented choice: the dedup horizon is retention. Once an event's
// partition is dropped, the same key is a new event.
TEST_F(Retention, ARepeatOfAnExpiredEventIsStoredAgain) {
  partitions(1s, 2s);
  start_all();
  publish_events("ret.expired", "e", 10);
  wait_for_idle(10);
  ASSERT_TRUE(wait_until([&] { return count_rows("topic = 'ret.expired'") == 0; }, 20s));
  publish_events("ret.expired", "e", 10);
  const json s = wait_for_idle(20);
  EXPECT_EQ(count_rows("topic = 'ret.expired'"), 10);
  EXPECT_EQ(s["duplicate_dropped"], 0) << s.dump();
}

// A stream bounded in bytes: with the processor stopped, publishes get 503
// with Retry-After at the bound and nothing acknowledged is lost; once the
// processor has stored the backlog, the acked events are purged and
// publishes succeed again (they would get 503 until STREAM_MAX_AGE).
TEST_F(Retention, AStreamAtItsByteBoundRefusesThenRecovers) {
  stream_.max_bytes = std::int64_t{256} * 1024;
  start_ingest();
  int accepted = 0;
  HttpResponse refused;
  for (int round = 0; round < 40 && refused.status == 0; ++round) {
    json batch = json::array();
    for (int i = 0; i < 20; ++i) {
      batch.push_back(
          event("ret.stream", std::to_string(round * 20 + i), {{"text", std::string(900, 'x')}}));
    }
    const HttpResponse response = publish(batch);
    // A refused request may have published its first events: its results say.
    for (const auto& r : json::parse(response.body).value("results", json::array())) {
      accepted += r["status"] == "accepted" ? 1 : 0;
    }
    if (response.status != 200) refused = response;
  }
  ASSERT_EQ(refused.status, 503) << "the stream never filled: " << accepted << " accepted";
  EXPECT_FALSE(refused.header("retry-after").empty());
  start_processor();
  wait_for_idle(accepted);
  EXPECT_EQ(count_rows("topic = 'ret.stream'"), accepted);
  // Room again: the acked events go, publishes are taken.
  EXPECT_TRUE(wait_until(
      [&] {
        json batch = json::array({event("ret.stream", "after", {{"text", std::string(900, 'y')}})});
        return publish(batch).status == 200;
      },
      20s))
      << "the stream stayed full of acked events";
  wait_for_idle(accepted + 1);
}

// While the consumer is busy, a purge keeps two of nats-server's blocks
// behind its ack floor (processor/src/stream_room.hpp: nats-server 2.9.10
// lost messages when a purge cut the block its consumer was reading). A
// 256 KiB stream is one 4 MiB block, so here nothing is purged while 10
// messages are out with a worker of our own (raw JetStream API requests, no
// ack), though the stream is over half its bound; once they come back after
// their AckWait and are stored, the acked events are purged.
TEST_F(Retention, NoPurgeCutsTheBlockABusyConsumerReads) {
  stream_.max_bytes = std::int64_t{256} * 1024;
  consumer_.ack_wait = 6s;
  start_all();
  publish_events("ret.before", "p", 40, 1000);
  wait_for_idle(40);

  stop_processor();
  publish_events("ret.held", "h", 10, 1000);
  natsConnection* conn = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&conn, nats_->url().c_str()), NATS_OK);
  natsSubscription* sub = nullptr;
  ASSERT_EQ(natsConnection_SubscribeSync(&sub, conn, "held.inbox"), NATS_OK);
  const std::string next = "$JS.API.CONSUMER.MSG.NEXT." + stream_.name + "." + consumer_.durable;
  ASSERT_EQ(natsConnection_PublishRequestString(conn, next.c_str(), "held.inbox",
                                                R"({"batch":10,"expires":2000000000})"),
            NATS_OK);
  int held = 0;
  for (natsMsg* msg = nullptr; held < 10 && natsSubscription_NextMsg(&msg, sub, 3000) == NATS_OK;) {
    held += natsMsg_GetDataLength(msg) > 0 ? 1 : 0;  // a status (no data) is not a message
    natsMsg_Destroy(msg);
  }
  natsSubscription_Destroy(sub);
  ASSERT_EQ(held, 10) << "the test's own worker did not get the messages";
  const std::string info = "$JS.API.STREAM.INFO." + stream_.name;
  const auto first_seq = [&]() -> std::uint64_t {
    natsMsg* reply = nullptr;
    if (natsConnection_RequestString(&reply, conn, info.c_str(), "", 2000) != NATS_OK) return 0;
    const json state = json::parse(
        std::string(natsMsg_GetData(reply), static_cast<std::size_t>(natsMsg_GetDataLength(reply))),
        nullptr, false);
    natsMsg_Destroy(reply);
    return state.is_object() ? state["state"].value("first_seq", std::uint64_t{0}) : 0;
  };

  start_processor();
  publish_events("ret.after", "b", 120, 1000);
  ASSERT_TRUE(wait_until([&] { return count_rows("topic = 'ret.after'") == 120; }, 30s));
  std::uint64_t first_while_held = 1;
  EXPECT_TRUE(wait_until(
      [&] {
        const std::uint64_t first = first_seq();
        if (count_rows("topic = 'ret.held'") == 10) return true;
        first_while_held = std::max(first_while_held, first);
        return false;
      },
      30s))
      << count_rows("topic = 'ret.held'") << " of the 10 held messages stored";
  EXPECT_EQ(first_while_held, 1u) << "purged while 10 messages were out";
  wait_for_idle(170);
  std::uint64_t first = 0;
  EXPECT_TRUE(wait_until([&] { return (first = first_seq()) > 50; }, 20s))
      << "the acked events were never purged: first sequence " << first;
  natsConnection_Destroy(conn);
}

}  // namespace
}  // namespace testsupport
