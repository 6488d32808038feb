#include "protocol_bodies.hpp"
#include "publisher.hpp"

namespace loadgen {

std::vector<loadtest::PlannedEvent> count_protocol_answer(
    loadtest::Protocol protocol, const std::vector<loadtest::PlannedEvent>& events, int status,
    std::string_view body, Totals& totals, const AcceptedCallback& on_accepted,
    Clock::time_point now, std::string* error) {
  const auto answers = loadtest::read_protocol_answer(protocol, status, body, events.size(), error);
  if (answers.empty()) {
    totals.permanent += events.size();
    return {};
  }
  std::vector<loadtest::PlannedEvent> again;
  for (std::size_t i = 0; i < answers.size(); ++i) {
    switch (answers[i]) {
      case loadtest::EventAnswer::kStored:
        ++totals.accepted;
        if (on_accepted) on_accepted(events[i].key, now);
        break;
      case loadtest::EventAnswer::kDuplicate:
        ++totals.duplicates;
        break;
      case loadtest::EventAnswer::kDelivered:
        ++totals.delivered;
        break;
      case loadtest::EventAnswer::kRetry:
        ++totals.failed;
        again.push_back(events[i]);
        break;
      case loadtest::EventAnswer::kRejected:
        ++totals.rejected;
        break;
    }
  }
  return again;
}

}  // namespace loadgen
