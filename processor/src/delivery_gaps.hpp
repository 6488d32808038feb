#pragma once

// Stream sequences the broker skipped over, seen from the deliveries
// (tests/unit/delivery_gaps_test.cpp). Two first deliveries with consecutive
// consumer sequences must carry consecutive stream sequences (the stream
// holds nothing but events.> and loses messages only at its front, by a
// purge below the ack floor or by age); a jump between them is messages the
// consumer never delivered and will never deliver: their ack floor moves
// past them. At 50 M rows in make bench-growth, 11,744 events nats-server
// 2.9.10 had taken went that way (stream_room.hpp). The worker that sees a gap loads the
// skipped messages from the stream by sequence and stores them (a position
// handled before is recognised, so a false alarm costs a lookup); those no
// longer in the stream are counted as gone.
#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "processor/message.hpp"

namespace processor {

/// Stream sequences [from, to], both included.
struct SequenceGap {
  std::uint64_t from = 0;
  std::uint64_t to = 0;
  std::uint64_t size() const { return to - from + 1; }
};

/// The recent deliveries of every worker of one processor, by consumer
/// sequence (the broker hands consecutive ones to different pull requests).
/// Thread-safe.
class DeliveryGaps {
 public:
  /// Notes one delivery; returns the gaps it reveals next to the deliveries
  /// noted before it (at most two).
  std::vector<SequenceGap> record(std::uint64_t consumer_seq, std::uint64_t stream_seq,
                                  bool first_delivery);
  /// Forgets everything (a stream or consumer made again restarts the
  /// sequences).
  void clear();

 private:
  struct Delivery {
    std::uint64_t consumer_seq = 0;
    std::uint64_t stream_seq = 0;
    bool first = false;
  };
  static constexpr std::size_t kWindow = 8192;
  std::mutex mutex_;
  std::array<Delivery, kWindow> recent_{};
};

/// What became of a gap's messages.
struct GapRepair {
  std::uint64_t recovered = 0;     ///< loaded from the stream and handed to `store`
  std::uint64_t gone = 0;          ///< no longer in the stream
  std::vector<SequenceGap> again;  ///< to try again: `store` failed, or over the budget
};

/// Loads each skipped message (`load` gives nothing for one the stream no
/// longer holds, and throws when the broker cannot say) and hands those
/// found to `store`, up to `budget` messages; `store` returns the
/// positions it could not settle, to be tried again.
GapRepair repair_gaps(
    const std::vector<SequenceGap>& gaps, std::uint64_t budget,
    const std::function<std::optional<IncomingMessage>(std::uint64_t)>& load,
    const std::function<std::vector<std::uint64_t>(const std::vector<IncomingMessage>&)>& store);

}  // namespace processor
