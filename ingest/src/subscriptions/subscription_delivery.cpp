// What one round of the hub delivers: the events settled since the last
// round to the subscribers at the live position, then pages from the
// database to those behind. Every read counts against the round's budget
// (SUBSCRIBE_ROUND_EVENTS, SUBSCRIBE_ROUND_BYTES); no subscriber is given
// more than its buffer (SUBSCRIBE_BUFFER_EVENTS, SUBSCRIBE_BUFFER_BYTES)
// unread: one that has no room falls back to catching up.
#include <algorithm>

#include "pipeline/cloudevents.hpp"
#include "pipeline/timestamp.hpp"
#include "subscriptions/subscription_hub.hpp"
#include "subscriptions/subscription_subscriber.hpp"

namespace ingest {

using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kCatchUpReads = 4;  // catch-up reads per round at most
constexpr std::size_t kNearPages = 4;     // "near the live position": within 4 pages

// One SSE event: the stored event natively, or as a CloudEvent.
std::string frame(const StoredEvent& event, bool cloudevents) {
  std::string cloudevent;
  if (cloudevents) cloudevent = pipeline::cloudevents::from_stored_json(event.json);
  const std::string& data = cloudevent.empty() ? event.json : cloudevent;
  std::string out;
  out.reserve(data.size() + 48);
  out += "id: ";
  out += event.position.token();
  out += "\nevent: event\ndata: ";
  out += data;
  out += "\n\n";
  return out;
}

std::size_t json_bytes(const EventRun& run) {
  std::size_t bytes = 0;
  for (const StoredEvent& event : run.events) bytes += event.json.size();
  return bytes;
}

}  // namespace

void SubscriptionHub::reindex() {
  by_topic_.clear();
  by_pattern_.clear();
  for (Subscriber& subscriber : subscribers_) {
    if (subscriber.pattern.exact()) {
      by_topic_[subscriber.pattern.text()].push_back(&subscriber);
    } else {
      by_pattern_.push_back(&subscriber);
    }
  }
  index_stale_ = false;
}

bool SubscriptionHub::has_room(const Subscriber& subscriber) const {
  return subscriber.unread_events + subscriber.out_events < settings_.buffer_events &&
         subscriber.unread_bytes + subscriber.out.size() < settings_.buffer_bytes;
}

// Adds `event` to the subscriber's frames of this round when it is its own
// (after its cursor, its pattern, stored since its `since`). False when it
// has no room left for it: nothing was added, its cursor stays before it.
bool SubscriptionHub::offer(Subscriber& subscriber, const StoredEvent& event,
                            Rendered* rendered) const {
  if (!(subscriber.cursor < event.position)) return true;  // had it already
  if (!subscriber.pattern.matches(event.topic) ||
      event.stored_at_micros < subscriber.since_micros) {
    return true;  // not its own: skipped
  }
  if (!has_room(subscriber)) return false;
  std::string& text = (*rendered)[subscriber.cloudevents ? 1 : 0];
  if (text.empty()) text = frame(event, subscriber.cloudevents);
  subscriber.out += text;
  ++subscriber.out_events;
  subscriber.cursor = event.position;
  return true;
}

void SubscriptionHub::deliver_live(EventPosition settled, Clock::time_point now) {
  if (index_stale_) reindex();
  for (Subscriber& subscriber : subscribers_) {
    subscriber.unread_events = subscriber.sink->pending();
    subscriber.unread_bytes = subscriber.sink->pending_bytes();
  }
  const std::int64_t now_micros = pipeline::now_utc().micros_since_epoch;
  // A live subscriber without room leaves the live position where its
  // frames end; it catches up from the database when it has room again.
  const auto give = [this](Subscriber* subscriber, const StoredEvent& event, Rendered& rendered) {
    if (!subscriber->caught_up) return;
    if (!offer(*subscriber, event, &rendered)) subscriber->caught_up = false;
  };
  while (*read_upto_ < settled && round_events_left_ > 0 && round_bytes_left_ > 0) {
    const EventRun run = store_.events_between(
        *read_upto_, settled, std::min(settings_.page, round_events_left_), round_bytes_left_, "");
    round_events_left_ -= std::min(round_events_left_, std::max<std::size_t>(1, run.events.size()));
    round_bytes_left_ -= std::min(round_bytes_left_, json_bytes(run));
    for (const StoredEvent& event : run.events) {
      if (observer_ != nullptr) {
        observer_->settled_after(static_cast<double>(now_micros - event.stored_at_micros) / 1e6);
      }
      Rendered rendered;
      const auto exact = by_topic_.find(event.topic);
      if (exact != by_topic_.end()) {
        for (Subscriber* subscriber : exact->second) give(subscriber, event, rendered);
      }
      for (Subscriber* subscriber : by_pattern_) give(subscriber, event, rendered);
    }
    read_upto_ = run.more && !run.events.empty() ? run.events.back().position : settled;
  }
  // Every subscriber still live has now seen (or skipped) all up to here.
  for (Subscriber& subscriber : subscribers_) {
    if (subscriber.caught_up && subscriber.cursor < *read_upto_) subscriber.cursor = *read_upto_;
    if (subscriber.out_events == 0) continue;
    send(subscriber, subscriber.out, subscriber.out_events, now);
    std::string().swap(subscriber.out);
    subscriber.out_events = 0;
  }
}

// Subscribers behind the live position (a resume, a `since`, one that
// arrived while a round was being read, one that had no room) are caught up
// by reads shared among them: a page from the lowest cursor of a group
// serves every subscriber of the group whose cursor lies inside it. Two
// groups take turns: the ones near the live position (they join it within a
// round or two, however many they are) and all of them (a `since` far back
// goes on meanwhile). A subscriber with its buffer full waits for its
// client.
void SubscriptionHub::catch_up(Clock::time_point now) {
  if (!read_upto_) return;
  std::vector<Subscriber*> behind;
  const auto roomy = [&](const Subscriber* subscriber) {
    return subscriber->unread_events < settings_.buffer_events &&
           subscriber->unread_bytes < settings_.buffer_bytes;
  };
  for (Subscriber& subscriber : subscribers_) {
    if (subscriber.caught_up) continue;
    if (!(subscriber.cursor < *read_upto_)) {
      subscriber.caught_up = true;
      continue;
    }
    subscriber.unread_events = subscriber.sink->pending();
    subscriber.unread_bytes = subscriber.sink->pending_bytes();
    if (roomy(&subscriber)) behind.push_back(&subscriber);
  }
  const auto near = [&](const Subscriber* subscriber) {
    return subscriber->cursor.created == read_upto_->created &&
           subscriber->cursor.seq + kNearPages * settings_.page >= read_upto_->seq;
  };
  for (std::size_t read = 0;
       read < kCatchUpReads && !behind.empty() && round_events_left_ > 0 && round_bytes_left_ > 0;
       ++read) {
    std::vector<Subscriber*> group;
    if (read % 2 == 0) std::copy_if(behind.begin(), behind.end(), std::back_inserter(group), near);
    if (group.empty()) group = behind;
    read_for(group, now);
    behind.erase(std::remove_if(behind.begin(), behind.end(),
                                [&](const Subscriber* s) { return s->caught_up || !roomy(s); }),
                 behind.end());
  }
}

// One page from the group's lowest cursor (only topics under the prefix its
// patterns share), handed to each member whose cursor lies inside it.
void SubscriptionHub::read_for(const std::vector<Subscriber*>& group, Clock::time_point now) {
  EventPosition from = group.front()->cursor;
  std::string prefix = group.front()->pattern.literal_prefix();
  for (const Subscriber* subscriber : group) {
    if (subscriber->cursor < from) from = subscriber->cursor;
    const std::string own = subscriber->pattern.literal_prefix();
    std::size_t common = 0;
    while (common < prefix.size() && common < own.size() && prefix[common] == own[common]) {
      ++common;
    }
    prefix.resize(common);
  }
  const EventRun run = store_.events_between(
      from, *read_upto_, std::min(settings_.page, round_events_left_), round_bytes_left_, prefix);
  round_events_left_ -= std::min(round_events_left_, std::max<std::size_t>(1, run.events.size()));
  round_bytes_left_ -= std::min(round_bytes_left_, json_bytes(run));
  const bool to_live = !run.more || run.events.empty();
  const EventPosition end = to_live ? *read_upto_ : run.events.back().position;
  for (Subscriber* subscriber : group) {
    if (!(subscriber->cursor < end)) continue;  // the page ends before its cursor
    bool room = true;
    for (const StoredEvent& event : run.events) {
      Rendered rendered;
      if (!offer(*subscriber, event, &rendered)) {
        room = false;
        break;
      }
    }
    if (room) subscriber->cursor = end;
    subscriber->caught_up = room && to_live;
    subscriber->unread_events += subscriber->out_events;
    subscriber->unread_bytes += subscriber->out.size();
    if (subscriber->out_events > 0) send(*subscriber, subscriber->out, subscriber->out_events, now);
    std::string().swap(subscriber->out);
    subscriber->out_events = 0;
  }
}

}  // namespace ingest
