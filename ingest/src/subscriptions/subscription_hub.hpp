#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ingest/event_store.hpp"
#include "subscriptions/topic_pattern.hpp"

namespace ingest {

/// Where the hub learns how far events are settled: the broker (BrokerAdmin).
class SettledSource {
 public:
  virtual ~SettledSource() = default;
  /// The stream's incarnation and the durable consumer's ack floor: every
  /// message at or below it is stored or dropped for good. nullopt when the
  /// broker cannot say.
  virtual std::optional<EventPosition> settled() = 0;
};

/// Where the hub reads stored events: PostgreSQL (EventStore).
class StoredEventSource {
 public:
  virtual ~StoredEventSource() = default;
  /// Events with `after` < position <= `upto`, in position order, at most
  /// `limit` of them and about `max_bytes` of JSON (the event that crosses
  /// it is the last; one at least); only topics starting with `prefix` when
  /// it is not empty (the caller checks the pattern itself). Throws when the
  /// database fails.
  virtual EventRun events_between(EventPosition after, EventPosition upto, std::size_t limit,
                                  std::size_t max_bytes, const std::string& prefix) = 0;
  /// The position just before the first event stored at or after `micros`,
  /// nullopt when none was. Throws when the database fails.
  virtual std::optional<EventPosition> before_stored_since(std::int64_t micros) = 0;
};

/// Where a subscription's events go: the SSE response (http::ResponseStream).
class EventSink {
 public:
  virtual ~EventSink() = default;
  /// False once the client is gone.
  virtual bool write(std::string_view bytes, std::size_t events) = 0;
  /// Events written but not yet taken by the client's socket.
  virtual std::size_t pending() const = 0;
  /// Bytes written but not yet taken by the client's socket.
  virtual std::size_t pending_bytes() const = 0;
  /// Bytes the client's socket has taken so far (grows while it reads).
  virtual std::uint64_t taken() const = 0;
  virtual bool open() const = 0;
  virtual void end() = 0;    ///< a clean end (shutdown)
  virtual void abort() = 0;  ///< cut (too slow)
};

/// Why a subscription ended (a metric label).
enum class StreamEnd { kClientGone, kSlow, kShutdown, kError };
inline constexpr StreamEnd kStreamEnds[] = {StreamEnd::kClientGone, StreamEnd::kSlow,
                                            StreamEnd::kShutdown, StreamEnd::kError};
const char* stream_end_name(StreamEnd reason);

/// What the hub reports as it works (metrics; nothing in tests).
class HubObserver {
 public:
  virtual ~HubObserver() = default;
  virtual void subscribers(std::size_t open) = 0;
  /// Events written to one subscriber.
  virtual void delivered(std::size_t events) = 0;
  /// An event read as it became settled: seconds since it was stored.
  virtual void settled_after(double seconds) = 0;
  virtual void ended(StreamEnd reason) = 0;
};

struct HubSettings {
  std::chrono::milliseconds poll_interval{50};  ///< SUBSCRIBE_POLL_INTERVAL
  std::chrono::milliseconds heartbeat{15000};   ///< SUBSCRIBE_HEARTBEAT
  /// SUBSCRIBE_BUFFER_EVENTS and SUBSCRIBE_BUFFER_BYTES: what a subscriber
  /// may leave unread. Beyond either, nothing more is written to it (it
  /// falls back to reading from the database when it has room again).
  std::size_t buffer_events = 1000;
  std::size_t buffer_bytes = std::size_t{2} << 20;
  /// SUBSCRIBE_SLOW_TIMEOUT: a subscriber whose buffer is full and whose
  /// client takes nothing of it for this long is cut (reason slow); it
  /// resumes from its last id. One that keeps reading, however slowly, is
  /// never cut: it falls back to catching up from the database.
  std::chrono::milliseconds slow_after{10000};
  std::size_t max_clients = 1000;  ///< SUBSCRIBE_MAX_CLIENTS
  std::size_t page = 500;          ///< rows per database read
  /// SUBSCRIBE_ROUND_EVENTS, SUBSCRIBE_ROUND_BYTES: the most one round reads
  /// from the database, for every subscriber together; more waits for the
  /// next round.
  std::size_t round_events = 5000;
  std::size_t round_bytes = std::size_t{8} << 20;
  /// After the stream is created again, how long the old incarnation's
  /// in-flight batches may still commit before it counts as settled.
  std::chrono::milliseconds incarnation_grace{60000};
};

/// Where a new subscription starts.
struct SubscriptionStart {
  enum class Kind { kNow, kAfter, kSince };
  Kind kind = Kind::kNow;
  EventPosition after;            ///< kAfter: right after this event
  std::int64_t since_micros = 0;  ///< kSince: the events stored at or after
};

/// Every subscription of this process, served by one thread: it asks the
/// broker how far events are settled, reads what was settled since in one
/// query for all subscribers, renders each event once, and hands it to the
/// subscribers whose pattern matches. A subscriber that is behind (a
/// resume, a `since`, or one that left its buffer full) is caught up from
/// the database page by page, then joins. Each gets every matching stored
/// event once, in position order. The hub's thread alone touches the
/// subscribers; other threads only add to a queue it takes from, so no
/// HTTP request ever waits on a database or broker call of the hub.
class SubscriptionHub {
 public:
  SubscriptionHub(SettledSource& settled, StoredEventSource& store, HubSettings settings,
                  HubObserver* observer = nullptr);
  ~SubscriptionHub();
  SubscriptionHub(const SubscriptionHub&) = delete;
  SubscriptionHub& operator=(const SubscriptionHub&) = delete;

  void start();  ///< the hub's thread
  /// Ends every subscription cleanly (reason shutdown) and stops the thread;
  /// a subscription attached later is ended at once.
  void stop();

  enum class Added { kOk, kFull, kUnavailable };
  /// A place taken for a subscription, and where it starts.
  struct Ticket {
    TopicPattern pattern;
    EventPosition cursor;
    std::int64_t since_micros = 0;  ///< events stored before this are skipped
    bool cloudevents = false;       ///< each event's data rendered as a CloudEvent
  };
  /// Takes a place (any thread; may ask the broker or the database where
  /// `start` is): a ticket, or why not: kFull past SUBSCRIBE_MAX_CLIENTS,
  /// kUnavailable when where it starts cannot be known now. A ticket must
  /// be attached (or given back with release()).
  std::optional<Ticket> admit(TopicPattern pattern, SubscriptionStart start, Added* why);
  void attach(Ticket ticket, std::shared_ptr<EventSink> sink);
  void release();
  /// admit() and attach() in one.
  Added add(std::shared_ptr<EventSink> sink, TopicPattern pattern, SubscriptionStart start);
  std::size_t size() const;

  /// One round of work; the thread calls it every poll interval (public for
  /// the unit tests, which drive it by hand).
  void tick(std::chrono::steady_clock::time_point now);

 private:
  struct Subscriber;
  using Rendered = std::array<std::string, 2>;
  // subscription_hub.cpp
  std::optional<EventPosition> bound(std::chrono::steady_clock::time_point now);
  void adopt();
  void sweep(std::chrono::steady_clock::time_point now);
  bool too_slow(Subscriber& subscriber, std::chrono::steady_clock::time_point now) const;
  void remove(std::list<Subscriber>::iterator it, StreamEnd reason);
  void send(Subscriber& subscriber, const std::string& bytes, std::size_t events,
            std::chrono::steady_clock::time_point now);
  // subscription_delivery.cpp
  void deliver_live(EventPosition settled, std::chrono::steady_clock::time_point now);
  void catch_up(std::chrono::steady_clock::time_point now);
  void read_for(const std::vector<Subscriber*>& group, std::chrono::steady_clock::time_point now);
  bool offer(Subscriber& subscriber, const StoredEvent& event, Rendered* rendered) const;
  bool has_room(const Subscriber& subscriber) const;
  void reindex();

  SettledSource& settled_;
  StoredEventSource& store_;
  const HubSettings settings_;
  HubObserver* observer_;

  // Shared with other threads, under mutex_: what admit() and attach() add,
  // the count, and the bound "now" starts from.
  mutable std::mutex mutex_;
  std::vector<Subscriber> incoming_;
  std::size_t reserved_ = 0;  // tickets not yet attached
  std::size_t count_ = 0;     // subscribers, incoming ones included
  bool stopped_ = false;
  std::optional<EventPosition> published_bound_;  // last_bound_, for admit()

  // The hub's thread alone (or the test driving tick()).
  std::list<Subscriber> subscribers_;
  // Who gets an event of a topic: subscribers of that exact topic, and the
  // pattern subscribers (checked per event). Rebuilt when the set changes.
  std::unordered_map<std::string, std::vector<Subscriber*>> by_topic_;
  std::vector<Subscriber*> by_pattern_;
  bool index_stale_ = true;
  std::optional<EventPosition> read_upto_;  // live events read up to here
  std::optional<EventPosition> last_bound_;
  std::optional<std::int64_t> incarnation_;  // the stream's creation time last seen
  std::optional<EventPosition> old_bound_;   // the previous incarnation's, during the grace
  std::chrono::steady_clock::time_point grace_until_;
  std::size_t round_events_left_ = 0;  // this round's reading budget
  std::size_t round_bytes_left_ = 0;

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace ingest
