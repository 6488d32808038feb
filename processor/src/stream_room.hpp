#pragma once

// Where the processor may purge its stream to make room (Maintenance::
// make_room): a pure rule, unit-tested in tests/unit/stream_room_test.cpp.
#include <cstdint>
#include <optional>

namespace processor {

/// What the rule reads from the stream's and the consumer's info.
struct StreamRoomState {
  std::int64_t max_bytes = -1;  ///< the stream's MaxBytes (<= 0: unbounded)
  std::uint64_t bytes = 0;
  std::uint64_t messages = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t ack_floor = 0;        ///< every message up to it is acked
  std::uint64_t num_pending = 0;      ///< not yet delivered
  std::uint64_t num_ack_pending = 0;  ///< delivered, not yet acked
};

/// The block size nats-server 2.9 gives a file stream bounded by `max_bytes`
/// (its dynBlkSize): a quarter of the bound, at least 32,000 bytes, at most
/// 8 MiB, and 4 MiB for anything between.
std::uint64_t stream_block_bytes(std::int64_t max_bytes);

/// The sequence to purge below (up to, not including), or nothing. Only
/// once the stream holds more than half its bound, and only acked messages.
/// While the consumer is busy (messages pending or out unacked), the purge
/// stays two blocks behind the ack floor, out of the block being read: in
/// `make bench-growth` at 50 M rows, nats-server 2.9.10 never delivered
/// 11,744 events it had taken, in four bursts, each within two seconds of a
/// purge and in the block it cut (how is not established). A caught-up
/// consumer allows a purge to the floor.
std::optional<std::uint64_t> purge_below(const StreamRoomState& s);

}  // namespace processor
