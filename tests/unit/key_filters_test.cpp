// The Bloom filter of a sealed partition's keys: never a false negative,
// about the false positive rate it was sized for, and the same bits after a
// trip through its stored form.
#include <gtest/gtest.h>

#include <random>

#include "key_filters.hpp"

namespace processor {
namespace {

KeyHash random_key(std::mt19937_64& rng) {
  KeyHash key{};
  for (auto& byte : key) byte = static_cast<std::uint8_t>(rng());
  return key;
}

TEST(KeyBloom, HoldsEveryKeyAddedAndFewOthers) {
  std::mt19937_64 rng(20);
  std::vector<KeyHash> keys;
  keys.reserve(100'000);
  for (int i = 0; i < 100'000; ++i) keys.push_back(random_key(rng));
  KeyBloom bloom = KeyBloom::sized_for(keys.size());
  for (const auto& key : keys) bloom.add(key);
  for (const auto& key : keys) ASSERT_TRUE(bloom.may_contain(key));
  int false_positives = 0;
  for (int i = 0; i < 100'000; ++i) false_positives += bloom.may_contain(random_key(rng)) ? 1 : 0;
  // 16 bits per key, 8 probes in a 512-bit block: about 0.2% expected.
  EXPECT_GT(false_positives, 50) << false_positives;
  EXPECT_LT(false_positives, 350) << false_positives;
  EXPECT_EQ(bloom.memory_bytes(), (100'000U * 16 + 511) / 512 * 64);  // whole blocks
}

TEST(KeyBloom, AnEmptyPartitionHoldsNothing) {
  const KeyBloom bloom = KeyBloom::sized_for(0);
  std::mt19937_64 rng(1);
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(bloom.may_contain(random_key(rng)));
}

TEST(KeyBloom, ItsStoredFormGivesTheSameFilter) {
  std::mt19937_64 rng(7);
  KeyBloom bloom = KeyBloom::sized_for(1000);
  std::vector<KeyHash> keys;
  keys.reserve(1000);
  for (int i = 0; i < 1000; ++i) {
    keys.push_back(random_key(rng));
    bloom.add(keys.back());
  }
  const auto copy = KeyBloom::from_bytes(bloom.bit_count(), bloom.hashes(), bloom.bytes());
  ASSERT_TRUE(copy.has_value());
  EXPECT_EQ(copy->bytes(), bloom.bytes());
  for (const auto& key : keys) EXPECT_TRUE(copy->may_contain(key));
  // Sizes that do not fit are refused rather than read out of bounds.
  EXPECT_FALSE(KeyBloom::from_bytes(bloom.bit_count() + 512, bloom.hashes(), bloom.bytes()));
  EXPECT_FALSE(KeyBloom::from_bytes(0, 8, ""));
  EXPECT_FALSE(KeyBloom::from_bytes(512, 0, std::string(64, '\0')));
  EXPECT_FALSE(KeyBloom::from_bytes(64, 8, std::string(8, '\0')));  // not whole blocks
}

TEST(KeyHashText, ParsesWhatPostgresPrints) {
  const auto key = parse_key_hash("0123abcd-ef01-2345-6789-abcdef012345");
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ((*key)[0], 0x01);
  EXPECT_EQ((*key)[3], 0xcd);
  EXPECT_EQ((*key)[15], 0x45);
  EXPECT_FALSE(parse_key_hash(""));
  EXPECT_FALSE(parse_key_hash("0123abcd-ef01-2345-6789-abcdef01234"));    // a digit short
  EXPECT_FALSE(parse_key_hash("0123abcd-ef01-2345-6789-abcdef0123456"));  // one too many
  EXPECT_FALSE(parse_key_hash("0123abcd-ef01-2345-6789-abcdef01234g"));
}

// The MD5 of "<topic>:<event_id>" as uuid text; the expected values are
// Python's hashlib.md5 of the UTF-8 text.
TEST(KeyHashText, EventKeyIsTheMd5OfTopicColonEventId) {
  EXPECT_EQ(key_text(event_key("orders", "42")), "87f88d1e-f091-4d9f-6d58-99fa6b554064");
  EXPECT_EQ(key_text(event_key("caf\u00e9", "\u00e9v\u00e9nement-\U0001F600")),
            "89eeac25-90fc-f9a9-1ece-eec5820ca575");
  const KeyHash key = event_key("orders", "42");
  EXPECT_EQ(parse_key_hash(key_text(key)), key);
}

}  // namespace
}  // namespace processor
