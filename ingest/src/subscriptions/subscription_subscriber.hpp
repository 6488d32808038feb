#pragma once

// One subscription as the hub's thread keeps it; private to the hub's files.
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "subscriptions/subscription_hub.hpp"

namespace ingest {

struct SubscriptionHub::Subscriber {
  std::shared_ptr<EventSink> sink;
  TopicPattern pattern;
  bool cloudevents = false;       ///< data: the event as a CloudEvent
  std::int64_t since_micros = 0;  ///< events stored before this are skipped (a `since`)
  EventPosition cursor;           ///< the last event it was sent (or skipped as not its own)
  bool caught_up = false;         ///< cursor has reached read_upto_: it gets live events
  std::string out;                ///< frames of this round, written once
  std::size_t out_events = 0;
  std::size_t unread_events = 0;  ///< what its client had not read when the round began
  std::size_t unread_bytes = 0;
  std::chrono::steady_clock::time_point last_write;  ///< {} until its first round
  /// Since when its buffer has been full with its client taking nothing
  /// (too_slow), and what the client had taken then.
  std::optional<std::chrono::steady_clock::time_point> stalled_since;
  std::uint64_t taken_then = 0;
};

}  // namespace ingest
