// The hub's life: admission (any thread), the round, the sweep of gone and
// slow subscribers. What a round delivers is in subscription_delivery.cpp.
#include "subscriptions/subscription_hub.hpp"

#include "pipeline/logging.hpp"
#include "subscriptions/subscription_subscriber.hpp"

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
  std::vector<Subscriber> incoming;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    incoming.swap(incoming_);
  }
  // No thread works on the subscribers any more.
  for (Subscriber& subscriber : incoming) subscribers_.push_back(std::move(subscriber));
  while (!subscribers_.empty()) {
    subscribers_.front().sink->end();
    remove(subscribers_.begin(), StreamEnd::kShutdown);
  }
}

std::size_t SubscriptionHub::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return count_;
}

std::optional<SubscriptionHub::Ticket> SubscriptionHub::admit(TopicPattern pattern,
                                                              SubscriptionStart start, Added* why) {
  std::optional<EventPosition> published;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (count_ + reserved_ >= settings_.max_clients) {
      *why = Added::kFull;
      return std::nullopt;
    }
    ++reserved_;
    published = published_bound_;
  }
  // Where it starts, resolved without the lock: these may wait on a server
  // (each with its own deadline).
  Ticket ticket{std::move(pattern), {}, 0, false};
  std::optional<EventPosition> cursor;
  try {
    // The settled bound never goes backwards: a floor that moved back (a
    // failover) is not where "now" is.
    std::optional<EventPosition> now = settled_.settled();
    if (published && (!now || *now < *published)) now = published;
    if (start.kind == SubscriptionStart::Kind::kAfter) {
      cursor = start.after;
    } else if (start.kind == SubscriptionStart::Kind::kSince) {
      // Rows are stored in any order above the settled bound: one below the
      // first row stored since then may still commit. So the walk starts no
      // later than the bound, and events stored before `since` are skipped.
      cursor = store_.before_stored_since(start.since_micros);
      if (cursor && now && *now < *cursor) cursor = now;
      ticket.since_micros = start.since_micros;
    }
    if (!cursor) cursor = now;
  } catch (const std::exception& e) {
    pipeline::log::warn("subscribe_start_failed", {{"error", pipeline::log::first_line(e.what())}});
  }
  if (!cursor) {
    release();
    *why = Added::kUnavailable;
    return std::nullopt;
  }
  *why = Added::kOk;
  ticket.cursor = *cursor;
  return ticket;
}

void SubscriptionHub::release() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (reserved_ > 0) --reserved_;
}

void SubscriptionHub::attach(Ticket ticket, std::shared_ptr<EventSink> sink) {
  Subscriber subscriber;
  subscriber.sink = std::move(sink);
  subscriber.pattern = std::move(ticket.pattern);
  subscriber.cursor = ticket.cursor;
  subscriber.since_micros = ticket.since_micros;
  subscriber.cloudevents = ticket.cloudevents;
  std::size_t open = 0;
  std::shared_ptr<EventSink> refused;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (reserved_ > 0) --reserved_;
    if (stopped_) {
      refused = subscriber.sink;
    } else {
      incoming_.push_back(std::move(subscriber));
      open = ++count_;
    }
  }
  if (refused) {
    // The hub has stopped (ingest drains): end it at once, as it ended the others.
    refused->end();
    if (observer_ != nullptr) observer_->ended(StreamEnd::kShutdown);
    return;
  }
  if (observer_ != nullptr) observer_->subscribers(open);
}

SubscriptionHub::Added SubscriptionHub::add(std::shared_ptr<EventSink> sink, TopicPattern pattern,
                                            SubscriptionStart start) {
  Added why = Added::kOk;
  auto ticket = admit(std::move(pattern), start, &why);
  if (ticket) attach(std::move(*ticket), std::move(sink));
  return why;
}

// The subscribers attached since the last round join the hub's own list.
void SubscriptionHub::adopt() {
  std::vector<Subscriber> incoming;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    incoming.swap(incoming_);
  }
  if (incoming.empty()) return;
  for (Subscriber& subscriber : incoming) subscribers_.push_back(std::move(subscriber));
  index_stale_ = true;
}

void SubscriptionHub::remove(std::list<Subscriber>::iterator it, StreamEnd reason) {
  subscribers_.erase(it);
  index_stale_ = true;
  std::size_t open = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    open = --count_;
  }
  if (observer_ != nullptr) {
    observer_->ended(reason);
    observer_->subscribers(open);
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
  adopt();
  if (subscribers_.empty()) {
    read_upto_.reset();  // nobody listens: no polling, and no backlog to read later
    return;
  }
  round_events_left_ = settings_.round_events;
  round_bytes_left_ = settings_.round_bytes;
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
  {
    std::lock_guard<std::mutex> lock(mutex_);
    published_bound_ = last_bound_;
  }
  sweep(now);
}

// Its buffer (events or bytes) full, and its client taking nothing of it,
// for SUBSCRIBE_SLOW_TIMEOUT: however the events came (one round or many),
// a client that keeps reading is never cut.
bool SubscriptionHub::too_slow(Subscriber& subscriber, Clock::time_point now) const {
  const bool full = subscriber.sink->pending() >= settings_.buffer_events ||
                    subscriber.sink->pending_bytes() >= settings_.buffer_bytes;
  const std::uint64_t taken = subscriber.sink->taken();
  if (!full || !subscriber.stalled_since || taken != subscriber.taken_then) {
    subscriber.stalled_since = full ? std::optional<Clock::time_point>(now) : std::nullopt;
    subscriber.taken_then = taken;
    return false;
  }
  return now - *subscriber.stalled_since >= settings_.slow_after;
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
