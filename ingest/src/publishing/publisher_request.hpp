#pragma once

// One publish() call on its way; private to the publisher's files.
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "ingest/publisher.hpp"

namespace ingest {

struct JetStreamPublisher::Request {
  std::vector<OutgoingMessage> messages;
  std::string request_id;
  std::string publish_id;  ///< unique per publish() call; each message adds its index
  std::string published_at;
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point deadline;
  Done done;

  std::mutex mutex;
  std::vector<PublishOutcome> outcomes;
  std::vector<bool> settled;
  std::vector<int> attempts;
  std::size_t remaining = 0;
  bool finished = false;
};

/// What one message takes of the publisher's room.
JetStreamPublisher::Room room_of(const OutgoingMessage& message);

}  // namespace ingest
