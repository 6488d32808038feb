// settle_batch: what becomes of each message when its write fails, from the
// one classification of errors, with a fake writer (no server).
#include <gtest/gtest.h>

#include <functional>
#include <pqxx/except>

#include "processor/settlement.hpp"

namespace processor {
namespace {

using Action = Settlement::Action;

// Fails as the test says: `fail(messages)` returns the exception to throw
// for a write of these messages, or nullptr to commit.
class FakeWriter final : public MessageWriter {
 public:
  using Failure = std::function<std::exception_ptr(const std::vector<IncomingMessage>&)>;
  explicit FakeWriter(Failure fail, Failure fail_dead_letter = nullptr)
      : fail_(std::move(fail)), fail_dead_letter_(std::move(fail_dead_letter)) {}

  BatchResult write(const std::vector<IncomingMessage>& messages) override {
    ++writes;
    if (auto error = fail_(messages)) std::rethrow_exception(error);
    BatchResult result;
    result.outcomes.assign(messages.size(), StoreOutcome::kStored);
    committed += messages.size();
    return result;
  }
  void dead_letter(const IncomingMessage& message, const std::string& /*reason*/) override {
    if (fail_dead_letter_) {
      if (auto error = fail_dead_letter_({message})) std::rethrow_exception(error);
    }
    ++dead_letters;
  }
  void reset() override { ++resets; }

  int writes = 0;
  std::size_t committed = 0;
  int dead_letters = 0;
  int resets = 0;

 private:
  Failure fail_;
  Failure fail_dead_letter_;
};

std::vector<IncomingMessage> batch(std::size_t n) {
  std::vector<IncomingMessage> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    out[i].position = {1, i + 1};
    out[i].subject = "events.t" + std::to_string(i % 3);
  }
  return out;
}

std::exception_ptr sql(const char* state) {
  return std::make_exception_ptr(pqxx::sql_error("failed", "INSERT", state));
}

bool has(const std::vector<IncomingMessage>& messages, const std::string& subject) {
  for (const auto& m : messages) {
    if (m.subject == subject) return true;
  }
  return false;
}

constexpr RetryPolicy kRetry{std::chrono::milliseconds(100), std::chrono::milliseconds(1000)};

TEST(SettleBatch, ACommittedBatchIsAckedWhole) {
  FakeWriter writer([](const auto&) { return std::exception_ptr(); });
  const auto settled = settle_batch(writer, batch(5), kRetry);
  ASSERT_EQ(settled.messages.size(), 5u);
  for (const auto& s : settled.messages) EXPECT_EQ(s.action, Action::kAck);
  EXPECT_TRUE(settled.failures.empty());
  EXPECT_EQ(writer.writes, 1);
}

// The case: a trigger raises disk_full (53100) for one topic. The
// other messages are stored, the topic's are retried later, none is
// dead-lettered.
TEST(SettleBatch, DiskFullForOneTopicRetriesItAndStoresTheOthers) {
  FakeWriter writer([](const auto& messages) {
    return has(messages, "events.t1") ? sql("53100") : std::exception_ptr();
  });
  const auto messages = batch(9);
  const auto settled = settle_batch(writer, messages, kRetry);
  EXPECT_TRUE(settled.split);
  EXPECT_EQ(writer.dead_letters, 0);
  EXPECT_EQ(writer.committed, 6u);
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const bool bad = messages[i].subject == "events.t1";
    EXPECT_EQ(settled.messages[i].action, bad ? Action::kRetry : Action::kAck) << i;
  }
}

TEST(SettleBatch, EveryPassingSqlstateIsRetriedNeverDeadLettered) {
  for (const char* state :
       {"53100", "53200", "57014", "55P03", "58030", "25006", "40001", "P0001", "42501", "XX000"}) {
    FakeWriter writer([&](const auto&) { return sql(state); });
    const auto settled = settle_batch(writer, batch(3), kRetry);
    EXPECT_EQ(writer.dead_letters, 0) << state;
    for (const auto& s : settled.messages) EXPECT_EQ(s.action, Action::kRetry) << state;
  }
}

TEST(SettleBatch, OnlyAMessageThatCanNeverBeStoredIsDeadLettered) {
  FakeWriter writer([](const auto& messages) {
    return messages.size() == 1 && messages[0].position.seq == 2 ? sql("22P02")
           : messages.size() > 1                                 ? sql("22P02")
                                                                 : std::exception_ptr();
  });
  const auto settled = settle_batch(writer, batch(3), kRetry);
  EXPECT_EQ(writer.dead_letters, 1);
  EXPECT_EQ(writer.committed, 2u);
  EXPECT_EQ(settled.messages[1].outcome, StoreOutcome::kDeadLettered);
  for (const auto& s : settled.messages) EXPECT_EQ(s.action, Action::kAck);
}

// A lost connection, or a COMMIT whose outcome is unknown, is a retry for
// every message: in the batch, and in the one-by-one path too (where the
// old code dead-lettered an in-doubt message).
TEST(SettleBatch, LostConnectionOrUnknownCommitRetriesEverything) {
  for (const auto& error : {std::make_exception_ptr(pqxx::broken_connection("gone")),
                            std::make_exception_ptr(pqxx::in_doubt_error("commit unknown"))}) {
    FakeWriter writer([&](const auto&) { return error; });
    const auto settled = settle_batch(writer, batch(4), kRetry);
    EXPECT_FALSE(settled.split);
    EXPECT_EQ(writer.writes, 1);
    for (const auto& s : settled.messages) EXPECT_EQ(s.action, Action::kRetry);
  }
  int call = 0;
  FakeWriter writer([&](const auto&) {
    ++call;
    if (call == 1) return sql("22P02");  // the batch: split it
    if (call == 2) return std::make_exception_ptr(pqxx::in_doubt_error("commit unknown"));
    return std::exception_ptr();
  });
  const auto settled = settle_batch(writer, batch(4), kRetry);
  EXPECT_EQ(writer.dead_letters, 0);
  EXPECT_EQ(writer.writes, 2);  // stops at the lost connection
  for (const auto& s : settled.messages) EXPECT_EQ(s.action, Action::kRetry);
}

TEST(SettleBatch, AFailedDeadLetterIsRetriedNotDropped) {
  FakeWriter writer([](const auto&) { return sql("23514"); },
                    [](const auto&) { return sql("53100"); });
  const auto settled = settle_batch(writer, batch(2), kRetry);
  EXPECT_EQ(writer.dead_letters, 0);
  for (const auto& s : settled.messages) EXPECT_EQ(s.action, Action::kRetry);
}

TEST(SettleBatch, ALoneMessageThatCanNeverBeStoredIsDeadLetteredWithoutARetry) {
  FakeWriter writer([](const auto&) { return sql("54000"); });
  const auto settled = settle_batch(writer, batch(1), kRetry);
  EXPECT_EQ(writer.writes, 1);
  EXPECT_EQ(writer.dead_letters, 1);
  EXPECT_EQ(settled.messages[0].action, Action::kAck);
}

TEST(SettleBatch, UnknownExceptionsAreRetried) {
  FakeWriter writer([](const auto&) { return std::make_exception_ptr(std::runtime_error("?")); });
  const auto settled = settle_batch(writer, batch(2), kRetry);
  EXPECT_EQ(writer.dead_letters, 0);
  for (const auto& s : settled.messages) EXPECT_EQ(s.action, Action::kRetry);
}

TEST(RetryPolicy, DoublesPerDeliveryUpToTheMaximum) {
  EXPECT_EQ(kRetry.delay(1).count(), 100);
  EXPECT_EQ(kRetry.delay(2).count(), 200);
  EXPECT_EQ(kRetry.delay(4).count(), 800);
  EXPECT_EQ(kRetry.delay(5).count(), 1000);
  EXPECT_EQ(kRetry.delay(1'000'000).count(), 1000);
  EXPECT_EQ(kRetry.delay(0).count(), 100);
}

TEST(FailureClassification, SqlstateClasses) {
  using pipeline::db::classify_failure;
  using pipeline::db::FailureKind;
  const auto kind = [](const char* state) {
    return classify_failure(pqxx::sql_error("x", "q", state));
  };
  EXPECT_EQ(kind("22P02"), FailureKind::kNeverStorable);
  EXPECT_EQ(kind("23505"), FailureKind::kNeverStorable);
  EXPECT_EQ(kind("54000"), FailureKind::kNeverStorable);
  EXPECT_EQ(kind("08006"), FailureKind::kUnavailable);
  EXPECT_EQ(kind("57P01"), FailureKind::kUnavailable);
  EXPECT_EQ(kind("57014"), FailureKind::kRetryLater);
  EXPECT_EQ(kind("53100"), FailureKind::kRetryLater);
  EXPECT_EQ(kind("25006"), FailureKind::kRetryLater);
  EXPECT_EQ(kind("P0001"), FailureKind::kRetryLater);
  EXPECT_EQ(classify_failure(pqxx::in_doubt_error("x")), FailureKind::kOutcomeUnknown);
  EXPECT_EQ(classify_failure(pqxx::broken_connection("x")), FailureKind::kUnavailable);
  EXPECT_EQ(classify_failure(pqxx::deadlock_detected("x")), FailureKind::kRetryLater);
  EXPECT_EQ(classify_failure(std::runtime_error("x")), FailureKind::kRetryLater);
}

}  // namespace
}  // namespace processor
