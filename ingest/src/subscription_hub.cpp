#include "subscription_hub.hpp"

#include <algorithm>
#include <array>

#include "pipeline/cloudevents.hpp"
#include "pipeline/logging.hpp"
#include "pipeline/timestamp.hpp"

namespace ingest {

using Clock = std::chrono::steady_clock;

const char* stream_end_name(StreamEnd reason) {
  switch (reason) {
    case StreamEnd::kClientGone:
      return "client_gone";
    case StreamEnd::kSlow:
      return "slow";
    case StreamEnd::kShutdown:
      return "shutdown";
    case StreamEnd::kError:
      return "error";
  }
  return "error";
}

struct SubscriptionHub::Subscriber {
  std::shared_ptr<EventSink> sink;
  TopicPattern pattern;
  bool cloudevents = false;  ///< data: the event as a CloudEvent
  EventPosition cursor;      ///< the last event it was sent (or skipped as not matching)
  bool caught_up = false;    ///< cursor has reached read_upto_: it gets live events
  std::string out;           ///< frames of this round, written once
  std::size_t out_events = 0;
  Clock::time_point last_write;  ///< {} until its first round
  // Behind and waiting for its client to read (catch_up, too_slow).
  std::size_t last_pending = 0;
  Clock::time_point waiting_since;
};

namespace {
constexpr std::size_t kCatchUpReads = 4;  // shared catch-up reads per round
constexpr std::size_t kNearPages = 4;     // "near the live position": within 4 pages
}  // namespace

namespace {

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

}  // namespace

SubscriptionHub::SubscriptionHub(SettledSource& settled, StoredEventSource& store,
                                 HubSettings settings, HubObserver* observer)
    : settled_(settled), store_(store), settings_(settings), observer_(observer) {}

SubscriptionHub::~SubscriptionHub() { stop(); }

void SubscriptionHub::start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(wake_mutex_);
    while (!quit_) {
      lock.unlock();
      tick(Clock::now());
      lock.lock();
      wake_.wait_for(lock, settings_.poll_interval, [&] { return quit_; });
    }
  });
}

void SubscriptionHub::stop() {
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    quit_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  while (!subscribers_.empty()) {
    subscribers_.front().sink->end();
    remove(subscribers_.begin(), StreamEnd::kShutdown);
  }
}

std::size_t SubscriptionHub::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return subscribers_.size();
}

std::optional<SubscriptionHub::Ticket> SubscriptionHub::admit(TopicPattern pattern,
                                                              SubscriptionStart start, Added* why) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (subscribers_.size() + reserved_ >= settings_.max_clients) {
      *why = Added::kFull;
      return std::nullopt;
    }
    ++reserved_;
  }
  // Where it starts, resolved without the lock: these may wait on a server.
  std::optional<EventPosition> cursor;
  try {
    if (start.kind == SubscriptionStart::Kind::kAfter) {
      cursor = start.after;
    } else if (start.kind == SubscriptionStart::Kind::kSince) {
      cursor = store_.before_stored_since(start.since_micros);
    }
    if (!cursor) cursor = settled_.settled();  // from now on
  } catch (const std::exception& e) {
    pipeline::log::warn("subscribe_start_failed", {{"error", pipeline::log::first_line(e.what())}});
  }
  if (!cursor) {
    release();
    *why = Added::kUnavailable;
    return std::nullopt;
  }
  *why = Added::kOk;
  return Ticket{std::move(pattern), *cursor};
}

void SubscriptionHub::release() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (reserved_ > 0) --reserved_;
}

void SubscriptionHub::attach(Ticket ticket, std::shared_ptr<EventSink> sink) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (reserved_ > 0) --reserved_;
  Subscriber subscriber;
  subscriber.sink = std::move(sink);
  subscriber.pattern = std::move(ticket.pattern);
  subscriber.cursor = ticket.cursor;
  subscriber.cloudevents = ticket.cloudevents;
  subscribers_.push_back(std::move(subscriber));
  index_stale_ = true;
  if (observer_ != nullptr) observer_->subscribers(subscribers_.size());
}

SubscriptionHub::Added SubscriptionHub::add(std::shared_ptr<EventSink> sink, TopicPattern pattern,
                                            SubscriptionStart start) {
  Added why = Added::kOk;
  auto ticket = admit(std::move(pattern), start, &why);
  if (ticket) attach(std::move(*ticket), std::move(sink));
  return why;
}

void SubscriptionHub::remove(std::list<Subscriber>::iterator it, StreamEnd reason) {
  subscribers_.erase(it);
  index_stale_ = true;
  if (observer_ != nullptr) {
    observer_->ended(reason);
    observer_->subscribers(subscribers_.size());
  }
}

void SubscriptionHub::send(Subscriber& subscriber, const std::string& bytes, std::size_t events,
                           Clock::time_point now) {
  subscriber.sink->write(bytes, events);  // a closed sink is found by sweep()
  subscriber.last_write = now;
  if (observer_ != nullptr && events > 0) observer_->delivered(events);
}

// How far events are settled. After the stream is made again, the old
// incarnation stays bounded by its last floor for the grace period: a batch
// of it still in flight may commit late, and must not land behind a
// subscriber that already moved on to the new incarnation.
std::optional<EventPosition> SubscriptionHub::bound(Clock::time_point now) {
  const auto settled = settled_.settled();
  if (!settled) return last_bound_;
  if (incarnation_ && settled->created != *incarnation_ && last_bound_) {
    old_bound_ = last_bound_;
    grace_until_ = now + settings_.incarnation_grace;
  }
  incarnation_ = settled->created;
  if (old_bound_ && now < grace_until_) return old_bound_;
  old_bound_.reset();
  // Never backwards: a floor that moves back (a broker failover, a consumer
  // made again) changes nothing for what was already delivered.
  if (!last_bound_ || *last_bound_ < *settled) last_bound_ = settled;
  return last_bound_;
}

void SubscriptionHub::tick(Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (subscribers_.empty()) {
    read_upto_.reset();  // nobody listens: no polling, and no backlog to read later
    return;
  }
  try {
    if (const auto settled = bound(now)) {
      if (!read_upto_) read_upto_ = *settled;
      deliver_live(*settled, now);
    }
    catch_up(now);
  } catch (const std::exception& e) {
    // The database is away: subscriptions wait (with their heartbeats).
    pipeline::log::warn("subscribe_read_failed", {{"error", pipeline::log::first_line(e.what())}});
  }
  sweep(now);
}

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

void SubscriptionHub::deliver_live(EventPosition settled, Clock::time_point now) {
  if (index_stale_) reindex();
  const std::int64_t now_micros = pipeline::now_utc().micros_since_epoch;
  // Each event is rendered once per format, for every subscriber it goes to.
  using Rendered = std::array<std::string, 2>;
  const auto offer = [](Subscriber* subscriber, const StoredEvent& event, Rendered& rendered) {
    if (!subscriber->caught_up || !(subscriber->cursor < event.position)) return;
    if (!subscriber->pattern.matches(event.topic)) return;
    std::string& frame_text = rendered[subscriber->cloudevents ? 1 : 0];
    if (frame_text.empty()) frame_text = frame(event, subscriber->cloudevents);
    subscriber->out += frame_text;
    ++subscriber->out_events;
  };
  while (*read_upto_ < settled) {
    const auto rows = store_.events_between(*read_upto_, settled, settings_.page, "");
    for (const StoredEvent& event : rows) {
      if (observer_ != nullptr) {
        observer_->settled_after(static_cast<double>(now_micros - event.stored_at_micros) / 1e6);
      }
      Rendered rendered;
      const auto exact = by_topic_.find(event.topic);
      if (exact != by_topic_.end()) {
        for (Subscriber* subscriber : exact->second) offer(subscriber, event, rendered);
      }
      for (Subscriber* subscriber : by_pattern_) offer(subscriber, event, rendered);
    }
    read_upto_ = rows.size() < settings_.page ? settled : rows.back().position;
  }
  // Every caught-up subscriber has now seen (or skipped) all up to here.
  for (Subscriber& subscriber : subscribers_) {
    if (subscriber.caught_up && subscriber.cursor < *read_upto_) subscriber.cursor = *read_upto_;
    if (subscriber.out_events == 0) continue;
    send(subscriber, subscriber.out, subscriber.out_events, now);
    subscriber.out.clear();
    subscriber.out_events = 0;
  }
}

// Subscribers behind the live position (a resume, a `since`, or one that
// arrived while a round was being read) are caught up by reads shared among
// them: a page from the lowest cursor of a group serves every subscriber of
// the group whose cursor lies inside it. Two groups take turns: the ones
// near the live position (they join it within a round or two, however many
// they are) and all of them (a `since` far back goes on meanwhile). A
// subscriber whose client has half its buffer unread waits for it.
void SubscriptionHub::catch_up(Clock::time_point now) {
  if (!read_upto_) return;
  std::vector<Subscriber*> behind;
  for (Subscriber& subscriber : subscribers_) {
    if (subscriber.caught_up) continue;
    if (!(subscriber.cursor < *read_upto_)) {
      subscriber.caught_up = true;
      continue;
    }
    if (subscriber.sink->pending() <= settings_.buffer_events / 2) behind.push_back(&subscriber);
  }
  const auto near = [&](const Subscriber* subscriber) {
    return subscriber->cursor.created == read_upto_->created &&
           subscriber->cursor.seq + kNearPages * settings_.page >= read_upto_->seq;
  };
  for (std::size_t read = 0; read < kCatchUpReads && !behind.empty(); ++read) {
    std::vector<Subscriber*> group;
    if (read % 2 == 0) std::copy_if(behind.begin(), behind.end(), std::back_inserter(group), near);
    if (group.empty()) group = behind;
    read_for(group, now);
    behind.erase(std::remove_if(behind.begin(), behind.end(),
                                [&](const Subscriber* s) {
                                  return s->caught_up ||
                                         s->sink->pending() > settings_.buffer_events / 2;
                                }),
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
  const auto rows = store_.events_between(from, *read_upto_, settings_.page, prefix);
  const bool to_live = rows.size() < settings_.page;
  const EventPosition end = to_live ? *read_upto_ : rows.back().position;
  for (Subscriber* subscriber : group) {
    if (!(subscriber->cursor < end)) continue;  // the page ends before its cursor
    std::string out;
    std::size_t events = 0;
    for (const StoredEvent& event : rows) {
      if (!(subscriber->cursor < event.position) || !subscriber->pattern.matches(event.topic)) {
        continue;
      }
      out += frame(event, subscriber->cloudevents);
      ++events;
    }
    subscriber->cursor = end;
    subscriber->caught_up = to_live;
    if (events > 0) send(*subscriber, out, events, now);
  }
}

// More than SUBSCRIBE_BUFFER_EVENTS unread; or, behind the live position,
// half of that unread (catch_up sends no more then) without the client
// reading any of it for a heartbeat interval.
bool SubscriptionHub::too_slow(Subscriber& subscriber, Clock::time_point now) const {
  const std::size_t pending = subscriber.sink->pending();
  if (pending > settings_.buffer_events) return true;
  const bool waiting = !subscriber.caught_up && pending > settings_.buffer_events / 2 &&
                       pending >= subscriber.last_pending;
  if (!waiting || subscriber.waiting_since == Clock::time_point{}) {
    subscriber.waiting_since = now;
  }
  subscriber.last_pending = pending;
  return waiting && now - subscriber.waiting_since >= settings_.heartbeat;
}

// Gone, too slow, or quiet for a heartbeat.
void SubscriptionHub::sweep(Clock::time_point now) {
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    const auto current = it++;
    Subscriber& subscriber = *current;
    if (!subscriber.sink->open()) {
      remove(current, StreamEnd::kClientGone);
    } else if (too_slow(subscriber, now)) {
      subscriber.sink->abort();
      remove(current, StreamEnd::kSlow);
    } else if (subscriber.last_write == Clock::time_point{}) {
      subscriber.last_write = now;  // new: its heartbeat counts from here
    } else if (now - subscriber.last_write >= settings_.heartbeat) {
      send(subscriber, ": ping\n\n", 0, now);
    }
  }
}

}  // namespace ingest
