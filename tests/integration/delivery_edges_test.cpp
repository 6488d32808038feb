// The delivery edges a chaos suite of killed processes does not reach: a
// database error of the kind that passes, restarts with other stream
// settings, the first write of a key arriving last, a consumer or a stream
// deleted and created again. Real nats-server, real PostgreSQL, the real
// ingest and processor code.
#include <pqxx/pqxx>
#include <thread>

#include "pipeline/jetstream.hpp"
#include "pipeline_fixture.hpp"

namespace testsupport {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class DeliveryEdges : public PipelineTest {
 protected:
  void SetUp() override {
    PipelineTest::SetUp();
    nats_conn_ = pipeline::nats::connect(nats_->url(), "edges-test", 5s);
    js_ = pipeline::nats::jetstream(nats_conn_.get());
  }
  void TearDown() override {
    js_.reset();
    nats_conn_.reset();
    PipelineTest::TearDown();
  }

  void sql(const std::string& statement) {
    pqxx::connection conn(shared_postgres().url(database_));
    pqxx::nontransaction tx(conn);
    tx.exec(statement);
  }
  std::int64_t scalar(const std::string& query) {
    pqxx::connection conn(shared_postgres().url(database_));
    pqxx::nontransaction tx(conn);
    return tx.exec1(query)[0].as<std::int64_t>();
  }
  jsStreamConfig running_stream(pipeline::nats::StreamInfoPtr& holder) {
    jsStreamInfo* si = nullptr;
    EXPECT_EQ(js_GetStreamInfo(&si, js_.get(), "EVENTS", nullptr, nullptr), NATS_OK);
    holder.reset(si);
    return *si->Config;
  }
  std::uint64_t stream_messages() {
    pipeline::nats::StreamInfoPtr holder;
    running_stream(holder);
    return holder->State.Msgs;
  }

  pipeline::nats::ConnectionPtr nats_conn_;
  pipeline::nats::JetStreamPtr js_;
};

// A trigger raises disk_full (SQLSTATE 53100) for one topic. Accepted events
// of that topic are retried, never dead-lettered, and stored once the
// trigger is gone; the other topics' events are stored meanwhile. (Before,
// each of them went to dead_letters.)
TEST_F(DeliveryEdges, DiskFullForOneTopicIsRetriedNotDeadLettered) {
  start_processor();
  start_ingest();
  ASSERT_EQ(publish(event("warmup", "0")).status, 200);
  wait_for_idle(1);
  sql(R"(CREATE FUNCTION refuse_full() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.topic = 'full' THEN
             RAISE EXCEPTION 'could not extend file: No space left on device'
               USING ERRCODE = '53100';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_full BEFORE INSERT ON events
           FOR EACH ROW EXECUTE FUNCTION refuse_full();)");
  json batch = json::array();
  for (int i = 0; i < 30; ++i) {
    batch.push_back(event("full", "f" + std::to_string(i)));
    batch.push_back(event("fine", "g" + std::to_string(i)));
  }
  const HttpResponse response = publish(batch);
  ASSERT_EQ(response.status, 200) << response.body;

  // The other topic goes through while the trigger refuses the first.
  ASSERT_TRUE(wait_until([&] { return count_rows("topic = 'fine'") == 30; }, 30s));
  // The refused ones are retried (and never dead-lettered) while it lasts.
  ASSERT_TRUE(wait_until([&] { return processor_->totals().retried.load() >= 60; }, 30s))
      << processor_->totals().retried.load();
  EXPECT_EQ(count_rows("topic = 'full'"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM dead_letters"), 0);
  EXPECT_EQ(stats()["dead_lettered"], 0);

  // DROP TRIGGER on a partitioned table locks the partitions before it
  // raises its lock on the table to ACCESS EXCLUSIVE: a query of events
  // between the two is a deadlock. The table first, then.
  sql("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE; DROP TRIGGER refuse_full ON events; "
      "COMMIT");
  const json s = wait_for_idle(61);
  EXPECT_EQ(count_rows("topic = 'full'"), 30);
  EXPECT_EQ(s["dead_lettered"], 0);
  EXPECT_EQ(s["received"], 61);
}

// With the processor stopped, events wait in the stream; ingest restarted
// with a far smaller STREAM_MAX_BYTES and STREAM_MAX_AGE must not shrink the
// running stream (nats-server would delete them at once). With
// STREAM_UPDATE=apply the operator's new settings are applied.
TEST_F(DeliveryEdges, RestartWithSmallerStreamLimitsDeletesNothing) {
  start_ingest();
  json batch = json::array();
  for (int i = 0; i < 400; ++i) batch.push_back(event("limits", std::to_string(i)));
  ASSERT_EQ(publish(batch).status, 200);
  ASSERT_EQ(stream_messages(), 400u);

  stop_ingest();
  const std::int64_t running_max_bytes = stream_.max_bytes;
  stream_.max_bytes = 20000;
  stream_.max_age = 1s;
  stream_.duplicate_window = 500ms;
  start_ingest();
  EXPECT_EQ(stream_messages(), 400u) << "a restart with smaller limits deleted stored events";
  pipeline::nats::StreamInfoPtr holder;
  EXPECT_EQ(running_stream(holder).MaxBytes, running_max_bytes);

  // The processor, started with other consumer settings too, keeps the
  // running ones and stores every event.
  consumer_.ack_wait = 7s;
  start_processor();
  wait_for_idle(400);
  jsConsumerInfo* ci = nullptr;
  ASSERT_EQ(js_GetConsumerInfo(&ci, js_.get(), "EVENTS", "processor", nullptr, nullptr), NATS_OK);
  pipeline::nats::ConsumerInfoPtr consumer(ci);
  EXPECT_EQ(consumer->Config->AckWait, std::int64_t{3'000'000'000});

  // Applied when asked for: now the broker enforces the smaller size.
  stop_ingest();
  stream_.update = pipeline::nats::ConfigUpdate::kApply;
  start_ingest();
  EXPECT_EQ(running_stream(holder).MaxBytes, 20000);
  EXPECT_LT(stream_messages(), 400u);
}

// A key published with payload A, then (after the broker's window) with
// payload B, both waiting in the stream. A's first delivery fails for a
// reason that passes, so B reaches the database first; when A is retried it
// takes the row's place: the first write wins by stream order, and B counts
// as the duplicate.
TEST_F(DeliveryEdges, FirstWriteWinsWhenTheLaterCopyCommitsFirst) {
  stream_.duplicate_window = 100ms;
  start_ingest();
  ASSERT_EQ(publish(event("fw", "key", {{"copy", "A"}})).status, 200);
  std::this_thread::sleep_for(300ms);  // the point: the broker's window passes
  const HttpResponse later = publish(event("fw", "key", {{"copy", "B"}}));
  ASSERT_EQ(later.status, 200);
  ASSERT_EQ(json::parse(later.body)["results"][0]["status"], "accepted");

  // Copy A fails its first two writes (a lock that could not be taken).
  sql(R"(CREATE SEQUENCE a_failures;
         CREATE FUNCTION fail_a_twice() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.payload->>'copy' = 'A' AND nextval('a_failures') <= 2 THEN
             RAISE EXCEPTION 'lock not available' USING ERRCODE = '55P03';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER fail_a_twice BEFORE INSERT OR UPDATE ON events
           FOR EACH ROW EXECUTE FUNCTION fail_a_twice();)");
  auto config = processor_config();
  config.batch_size = 1;  // A and B in different transactions
  config.workers = 1;
  processor_ = std::make_unique<processor::Processor>(config);
  processor_->start();
  const json s = wait_for_idle(1);
  EXPECT_EQ(count_rows("payload->>'copy' = 'A'"), 1);
  EXPECT_EQ(s["duplicate_dropped"], 1);
  EXPECT_EQ(s["dead_lettered"], 0);
  EXPECT_GE(processor_->totals().replaced.load(), 1u) << "B was not stored first: no race shown";
}

// The consumer deleted and created again delivers the whole stream again
// (deliver-all): every message is recognised, nothing is counted twice,
// duplicates included (their records are kept while the stream holds them,
// however often pruning runs).
TEST_F(DeliveryEdges, ConsumerCreatedAgainReplaysWithoutCountingTwice) {
  stream_.duplicate_window = 100ms;
  start_ingest();
  auto config = processor_config();
  config.prune_interval = 100ms;
  processor_ = std::make_unique<processor::Processor>(config);
  processor_->start();
  json batch = json::array();
  for (int i = 0; i < 50; ++i) batch.push_back(event("replay", std::to_string(i)));
  ASSERT_EQ(publish(batch).status, 200);
  ASSERT_EQ(publish(batch).status, 200);  // broker duplicates: one marker
  wait_for_idle(50);
  std::this_thread::sleep_for(300ms);     // the point: the broker's window passes
  ASSERT_EQ(publish(batch).status, 200);  // database duplicates
  const json before = wait_for_idle(50);
  EXPECT_EQ(before["duplicate_dropped"], 100);
  std::this_thread::sleep_for(500ms);  // several prune rounds

  const std::uint64_t messages = stream_messages();  // 50 + 1 marker + 50
  ASSERT_EQ(messages, 101u);
  ASSERT_EQ(js_DeleteConsumer(js_.get(), "EVENTS", "processor", nullptr, nullptr), NATS_OK);
  // The processor's workers find it gone and create it again; it replays.
  ASSERT_TRUE(wait_until([&] { return processor_->totals().redelivered.load() >= messages; }, 60s))
      << processor_->totals().redelivered.load();
  const json after = wait_for_idle(50);
  EXPECT_EQ(after["duplicate_dropped"], 100) << after.dump();
  EXPECT_EQ(after["received"], 150);
  EXPECT_EQ(count_rows(), 50);
}

// A stream deleted and created again numbers its messages from 1 again. New
// events at old sequences are stored and counted as new; a poison message at
// the sequence of an old dead letter is kept too (UNIQUE(stream_seq) used to
// ack it and keep nothing).
TEST_F(DeliveryEdges, StreamCreatedAgainRestartsSequencesAndStaysCorrect) {
  start_processor();
  start_ingest();
  const auto poison = [&] {
    const std::string body = "not json";
    jsPubAck* ack = nullptr;
    ASSERT_EQ(js_Publish(&ack, js_.get(), "events.poison", body.data(),
                         static_cast<int>(body.size()), nullptr, nullptr),
              NATS_OK);
    jsPubAck_Destroy(ack);
  };
  poison();  // sequence 1
  json first = json::array();
  for (int i = 0; i < 20; ++i) first.push_back(event("incarnation", "old-" + std::to_string(i)));
  ASSERT_EQ(publish(first).status, 200);
  ASSERT_TRUE(wait_until(
      [&] {
        const json now = stats();
        return now["pending"] == 0 && now["unique_processed"] == 20 && now["dead_lettered"] == 1;
      },
      30s));

  ASSERT_EQ(js_DeleteStream(js_.get(), "EVENTS", nullptr, nullptr), NATS_OK);
  // The processor's workers create the stream and the consumer again.
  ASSERT_TRUE(wait_until([&] { return pipeline::nats::stream_exists(js_.get(), "EVENTS"); }, 30s));
  poison();  // sequence 1 again
  json second = json::array();
  for (int i = 0; i < 20; ++i) second.push_back(event("incarnation", "new-" + std::to_string(i)));
  second.push_back(event("incarnation", "old-0"));  // a repeat across incarnations
  HttpResponse response;
  ASSERT_TRUE(wait_until([&] { return (response = publish(second)).status == 200; }, 30s))
      << response.status << " " << response.body;

  json s;
  ASSERT_TRUE(wait_until(
      [&] {
        s = stats();
        return s["pending"] == 0 && s["unique_processed"] == 40 && s["dead_lettered"] == 2;
      },
      30s))
      << s.dump();
  EXPECT_EQ(s["duplicate_dropped"], 1);
  EXPECT_EQ(count_rows(), 40);
  EXPECT_EQ(scalar("SELECT count(*) FROM dead_letters"), 2);
  EXPECT_EQ(scalar("SELECT count(DISTINCT stream_created) FROM events"), 2);
}

// A message gone from the stream before it was delivered (deleted by hand
// here; nats-server 2.9.10 skipped messages after purges at 50 M rows): the
// consumer delivers around it, and the processor sees the jump in stream
// sequences between two consecutive deliveries, looks the message up, and
// counts it as gone; everything else is stored.
TEST_F(DeliveryEdges, AMessageGoneBeforeItsDeliveryIsCountedNotSilent) {
  processor_metrics_ = true;
  start_ingest();
  json batch = json::array();
  for (int i = 0; i < 20; ++i) batch.push_back(event("edges.gone", std::to_string(i)));
  ASSERT_EQ(publish(batch).status, 200);
  jsErrCode code = static_cast<jsErrCode>(0);
  ASSERT_EQ(js_DeleteMsg(js_.get(), stream_.name.c_str(), 10, nullptr, &code), NATS_OK) << code;
  start_processor();
  ASSERT_TRUE(wait_until([&] { return count_rows("topic = 'edges.gone'") == 19; }, 30s));
  HttpClient metrics(processor_->metrics_port());
  std::string text;
  EXPECT_TRUE(wait_until(
      [&] {
        text = metrics.get("/metrics").body;
        return text.find("pipeline_processor_skipped_messages_total{outcome=\"gone\"} 1\n") !=
               std::string::npos;
      },
      10s))
      << text.substr(text.find("pipeline_processor_skipped"), 300);
  EXPECT_NE(text.find("pipeline_processor_skipped_messages_total{outcome=\"recovered\"} 0\n"),
            std::string::npos);
}

}  // namespace
}  // namespace testsupport
