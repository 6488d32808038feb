// The publisher's own thread, the only one that hands messages to nats.c,
// and the room it keeps: at most INGEST_MAX_PENDING_PUBLISHES messages and
// INGEST_MAX_PENDING_PUBLISH_BYTES bytes await PubAcks at once.
#include "ingest/publisher.hpp"
#include "publishing/publisher_request.hpp"

namespace ingest {

bool JetStreamPublisher::admit(Room room) {
  std::lock_guard<std::mutex> lock(room_mutex_);
  // One request is always let through alone, however large (its size is
  // bounded by INGEST_MAX_BODY_BYTES): a capacity below one request's must
  // not refuse it forever.
  const bool empty = in_flight_.messages == 0;
  if (!empty && (in_flight_.messages + room.messages > capacity_.messages ||
                 in_flight_.bytes + room.bytes > capacity_.bytes)) {
    return false;
  }
  in_flight_.messages += room.messages;
  in_flight_.bytes += room.bytes;
  return true;
}

void JetStreamPublisher::release(Room room) {
  std::lock_guard<std::mutex> lock(room_mutex_);
  in_flight_.messages -= std::min(in_flight_.messages, room.messages);
  in_flight_.bytes -= std::min(in_flight_.bytes, room.bytes);
}

JetStreamPublisher::Room JetStreamPublisher::in_flight() const {
  std::lock_guard<std::mutex> lock(room_mutex_);
  return in_flight_;
}

void JetStreamPublisher::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(send_mutex_);
    if (send_quit_) return;
    send_queue_.push_back(std::move(task));
  }
  send_wake_.notify_one();
}

void JetStreamPublisher::run_sender() {
  std::unique_lock<std::mutex> lock(send_mutex_);
  while (true) {
    send_wake_.wait(lock, [&] { return send_quit_ || !send_queue_.empty(); });
    if (send_quit_) return;
    std::deque<std::function<void()>> batch;
    batch.swap(send_queue_);
    lock.unlock();
    for (auto& task : batch) task();
    lock.lock();
  }
}

JetStreamPublisher::Room room_of(const OutgoingMessage& message) {
  return {1, message.message_id.empty() ? JetStreamPublisher::kMarkerBytes : message.data.size()};
}

}  // namespace ingest
