#include "delivery_gaps.hpp"

#include <algorithm>

namespace processor {

std::vector<SequenceGap> DeliveryGaps::record(std::uint64_t consumer_seq, std::uint64_t stream_seq,
                                              bool first_delivery) {
  std::vector<SequenceGap> gaps;
  if (consumer_seq == 0 || stream_seq == 0) return gaps;
  std::lock_guard<std::mutex> lock(mutex_);
  recent_[consumer_seq % kWindow] = {consumer_seq, stream_seq, first_delivery};
  if (!first_delivery) return gaps;
  const Delivery& before = recent_[(consumer_seq - 1) % kWindow];
  if (before.consumer_seq == consumer_seq - 1 && before.first &&
      stream_seq > before.stream_seq + 1) {
    gaps.push_back({before.stream_seq + 1, stream_seq - 1});
  }
  const Delivery& after = recent_[(consumer_seq + 1) % kWindow];
  if (after.consumer_seq == consumer_seq + 1 && after.first && after.stream_seq > stream_seq + 1) {
    gaps.push_back({stream_seq + 1, after.stream_seq - 1});
  }
  return gaps;
}

void DeliveryGaps::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  recent_.fill({});
}

GapRepair repair_gaps(
    const std::vector<SequenceGap>& gaps, std::uint64_t budget,
    const std::function<std::optional<IncomingMessage>(std::uint64_t)>& load,
    const std::function<std::vector<std::uint64_t>(const std::vector<IncomingMessage>&)>& store) {
  GapRepair repair;
  std::vector<IncomingMessage> found;
  for (const SequenceGap& gap : gaps) {
    std::uint64_t seq = gap.from;
    for (; seq <= gap.to && budget > 0; ++seq, --budget) {
      std::optional<IncomingMessage> message = load(seq);
      if (message) {
        found.push_back(std::move(*message));
      } else {
        ++repair.gone;
      }
    }
    if (seq <= gap.to) repair.again.push_back({seq, gap.to});
  }
  if (found.empty()) return repair;
  std::vector<std::uint64_t> unsettled = store(found);
  repair.recovered = found.size() - unsettled.size();
  std::sort(unsettled.begin(), unsettled.end());
  for (const std::uint64_t seq : unsettled) {
    if (!repair.again.empty() && repair.again.back().to + 1 == seq &&
        repair.again.back().from <= seq) {
      repair.again.back().to = seq;
    } else {
      repair.again.push_back({seq, seq});
    }
  }
  return repair;
}

}  // namespace processor
