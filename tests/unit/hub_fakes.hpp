#pragma once

// Fakes of the subscription hub's ports, and the fixture that drives its
// rounds by hand (subscription_hub_test.cpp, subscription_hub_slow_test.cpp).
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "subscriptions/subscription_hub.hpp"
#include "subscriptions/topic_pattern.hpp"

namespace ingest::hubtest {

inline TopicPattern pattern(const std::string& text) {
  std::string error;
  auto parsed = TopicPattern::parse(text, 255, &error);
  EXPECT_TRUE(parsed) << text << ": " << error;
  return parsed.value_or(TopicPattern());
}

struct FakeBroker final : SettledSource {
  std::optional<EventPosition> floor{EventPosition{7, 0}};
  std::optional<EventPosition> settled() override { return floor; }
};

// Rows kept by position; the store "commits" rows in any order.
struct FakeStore final : StoredEventSource {
  std::map<EventPosition, StoredEvent> rows;
  int reads = 0;
  bool fail = false;
  void store(EventPosition at, const std::string& topic, const std::string& id) {
    rows[at] = {at, topic, nlohmann::json{{"topic", topic}, {"event_id", id}}.dump(), 0};
  }
  EventRun events_between(EventPosition after, EventPosition upto, std::size_t limit,
                          std::size_t max_bytes, const std::string& prefix) override {
    if (fail) throw std::runtime_error("database gone");
    ++reads;
    EventRun run;
    std::size_t bytes = 0;
    for (auto it = rows.upper_bound(after); it != rows.end() && it->first <= upto; ++it) {
      if (!prefix.empty() && it->second.topic.rfind(prefix, 0) != 0) continue;
      if (run.events.size() == limit || (!run.events.empty() && bytes >= max_bytes)) {
        run.more = true;
        break;
      }
      run.events.push_back(it->second);
      bytes += it->second.json.size();
    }
    return run;
  }
  std::optional<EventPosition> before_stored_since(std::int64_t /*micros*/) override {
    if (rows.empty()) return std::nullopt;
    EventPosition first = rows.begin()->first;
    --first.seq;
    return first;
  }
};

// Collects the SSE frames; `stalled` leaves them unread (a client that
// stops reading).
struct FakeClient final : EventSink {
  std::string text;
  std::size_t unread = 0;
  bool stalled = false;
  bool closed = false;
  bool ended = false;
  bool aborted = false;
  std::size_t unread_bytes = 0;
  bool write(std::string_view bytes, std::size_t events) override {
    if (closed) return false;
    text.append(bytes);
    if (stalled) {
      unread += events;
      unread_bytes += bytes.size();
    }
    return true;
  }
  std::uint64_t read_bytes = 0;
  // Reads `events` of what it left unread (their bytes roughly in proportion).
  void read(std::size_t events) {
    if (unread == 0) return;
    const std::size_t taken = std::min(events, unread);
    const std::size_t bytes = unread_bytes * taken / unread;
    unread_bytes -= bytes;
    read_bytes += bytes + 1;
    unread -= taken;
  }
  std::uint64_t taken() const override { return read_bytes; }
  std::size_t pending() const override { return unread; }
  std::size_t pending_bytes() const override { return unread_bytes; }
  bool open() const override { return !closed; }
  void end() override { ended = closed = true; }
  void abort() override { aborted = closed = true; }
  // The event ids received, in order.
  std::vector<std::string> ids() const {
    std::vector<std::string> out;
    std::size_t at = 0;
    while ((at = text.find("data: ", at)) != std::string::npos) {
      const auto end = text.find('\n', at);
      out.push_back(nlohmann::json::parse(text.substr(at + 6, end - at - 6))["event_id"]);
      at = end;
    }
    return out;
  }
};

class Hub : public ::testing::Test {
 protected:
  Hub() {
    settings_.page = 3;  // small pages: every walk takes several reads
    settings_.buffer_events = 10;
    settings_.heartbeat = std::chrono::seconds(15);
    settings_.max_clients = 3;  // the limit test opens three
  }
  std::shared_ptr<FakeClient> subscribe(const std::string& topics = ">",
                                        SubscriptionStart start = {}) {
    auto client = std::make_shared<FakeClient>();
    EXPECT_EQ(hub().add(client, pattern(topics), start), SubscriptionHub::Added::kOk);
    return client;
  }
  void tick(int rounds = 1) {
    for (int i = 0; i < rounds; ++i) hub().tick(now_ += std::chrono::milliseconds(50));
  }
  SubscriptionHub& hub() {
    if (!hub_) hub_ = std::make_unique<SubscriptionHub>(broker_, store_, settings_);
    return *hub_;
  }
  FakeBroker broker_;
  FakeStore store_;
  HubSettings settings_;
  std::unique_ptr<SubscriptionHub> hub_;
  std::chrono::steady_clock::time_point now_;
};

}  // namespace ingest::hubtest
