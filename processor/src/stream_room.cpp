#include "stream_room.hpp"

namespace processor {

std::uint64_t stream_block_bytes(std::int64_t max_bytes) {
  constexpr std::int64_t kMin = 32'000;
  constexpr std::int64_t kMedium = 4 << 20;
  constexpr std::int64_t kMax = 8 << 20;
  if (max_bytes <= 0) return kMax;
  std::int64_t size = max_bytes / 4 + 1;
  if (size % 100 != 0) size += 100 - size % 100;
  if (size <= kMin) return kMin;
  if (size >= kMax) return kMax;
  return kMedium;
}

std::optional<std::uint64_t> purge_below(const StreamRoomState& s) {
  if (s.max_bytes <= 0 || s.bytes * 2 <= static_cast<std::uint64_t>(s.max_bytes)) return {};
  if (s.ack_floor < s.first_seq || s.messages == 0) return {};  // nothing acked left
  std::uint64_t below = s.ack_floor + 1;
  if (s.num_pending > 0 || s.num_ack_pending > 0) {
    // Two blocks' worth of messages at the stream's mean size, kept.
    const std::uint64_t mean = (s.bytes + s.messages - 1) / s.messages;
    const std::uint64_t keep = (2 * stream_block_bytes(s.max_bytes) + mean - 1) / mean;
    if (below < s.first_seq + keep) return {};
    below -= keep;
  }
  if (below <= s.first_seq) return {};
  return below;
}

}  // namespace processor
