// The rule for purging acked messages from the stream (processor/src/
// stream_room.hpp): only over half the bound, only acked messages, and two
// of nats-server's blocks behind the ack floor while the consumer is busy.
#include <gtest/gtest.h>

#include "stream_room.hpp"

namespace processor {
namespace {

constexpr std::int64_t kGiB = std::int64_t{1} << 30;

StreamRoomState busy_full_stream() {
  StreamRoomState s;
  s.max_bytes = 16 * kGiB;
  s.messages = 30'000'000;
  s.bytes = s.messages * 570;  // over half the bound
  s.first_seq = 1'000'000;
  s.ack_floor = 13'435'242;
  s.num_pending = 15'000'000;
  s.num_ack_pending = 8'000;
  return s;
}

TEST(StreamRoom, BlockSizesFollowNatsServer29) {
  EXPECT_EQ(stream_block_bytes(262'144), 4u << 20);  // a quarter is 64 KB: the medium size
  EXPECT_EQ(stream_block_bytes(100'000), 32'000u);
  EXPECT_EQ(stream_block_bytes(16 * kGiB), 8u << 20);
  EXPECT_EQ(stream_block_bytes(-1), 8u << 20);
}

TEST(StreamRoom, NothingBelowHalfTheBoundOrUnbounded) {
  StreamRoomState s = busy_full_stream();
  s.bytes = static_cast<std::uint64_t>(s.max_bytes / 2);
  EXPECT_FALSE(purge_below(s));
  s = busy_full_stream();
  s.max_bytes = -1;
  EXPECT_FALSE(purge_below(s));
}

TEST(StreamRoom, ABusyConsumerKeepsTwoBlocksBehindItsAckFloor) {
  const StreamRoomState s = busy_full_stream();
  const auto below = purge_below(s);
  ASSERT_TRUE(below);
  const std::uint64_t kept_bytes = (s.ack_floor + 1 - *below) * 570;
  EXPECT_GE(kept_bytes, 2u * (8u << 20));
  EXPECT_LT(kept_bytes, 3u * (8u << 20));
}

TEST(StreamRoom, ACaughtUpConsumerAllowsAPurgeToItsFloor) {
  StreamRoomState s = busy_full_stream();
  s.num_pending = 0;
  s.num_ack_pending = 0;
  EXPECT_EQ(purge_below(s), s.ack_floor + 1);
}

TEST(StreamRoom, MessagesOutUnackedAloneMakeTheConsumerBusy) {
  StreamRoomState s = busy_full_stream();
  s.num_pending = 0;
  EXPECT_LT(*purge_below(s), s.ack_floor + 1);
}

TEST(StreamRoom, NothingWhenTheAckedPartIsWithinTwoBlocks) {
  StreamRoomState s = busy_full_stream();
  s.ack_floor = s.first_seq + 1000;  // 570 KB acked: less than two blocks
  EXPECT_FALSE(purge_below(s));
  s.ack_floor = s.first_seq - 1;  // nothing acked
  s.num_pending = 0;
  s.num_ack_pending = 0;
  EXPECT_FALSE(purge_below(s));
}

TEST(StreamRoom, ASmallStreamIsPurgedOnlyWhenCaughtUp) {
  // 256 KiB in one 4 MiB block: any purge would cut the block being read.
  StreamRoomState s;
  s.max_bytes = 262'144;
  s.messages = 200;
  s.bytes = 240'000;
  s.first_seq = 1;
  s.ack_floor = 190;
  s.num_ack_pending = 10;
  EXPECT_FALSE(purge_below(s));
  s.num_ack_pending = 0;
  EXPECT_EQ(purge_below(s), 191u);
}

}  // namespace
}  // namespace processor
