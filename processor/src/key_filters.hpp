#pragma once

// Bloom filters of the keys of sealed partitions, so that a batch's keys are
// looked up in the one or two partitions being written rather than in every
// partition of the events table. Each partition's UNIQUE (key_hash) costs
// about 0.8 ms per batch of 256 keys whatever its size (measured on 12
// partitions of 4 M rows: 9.3 ms per batch for all of them, 0.9 ms for one,
// the same with the indexes in shared buffers), so the lookup grew with the
// partitions: 30 daily ones would take about 25 ms of every batch.
//
// A partition is sealed (sealed_ranges.hpp) once no transaction can add
// rows to it any more.
// The processor holding the partition lock builds each sealed partition's
// filter once, from its key index, into key_filters (migrations/0007); every
// processor loads them. A key that no filter of a sealed partition may
// contain is looked up only in the partitions after them; one that a filter
// may contain, in that partition as well. A filter has no false negatives,
// so deduplication is as exact as without them; a false positive (0.2% per
// partition) costs one lookup.
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/connection>

namespace processor {

/// key_hash: event_key(topic, event_id), the MD5 of "<topic>:<event_id>".
using KeyHash = std::array<std::uint8_t, 16>;

/// Parses a uuid's text ("0123abcd-...", as PostgreSQL prints it); nullopt
/// for anything else.
std::optional<KeyHash> parse_key_hash(const std::string& text);

/// event_key(topic, event_id) as PostgreSQL computes it (migrations/0005),
/// here, so that a batch's lookup sends the keys rather than have each
/// statement hash them again.
KeyHash event_key(const std::string& topic, const std::string& event_id);

/// A key as uuid text ("0123abcd-ef01-...", lower case), as PostgreSQL reads it.
std::string key_text(const KeyHash& key);
/// The same text, appended to `out`.
void append_key_text(std::string& out, const KeyHash& key);

class KeyBloom {
 public:
  /// 16 bits per key, 8 probes in one 512-bit block: about 0.2% false
  /// positives.
  static KeyBloom sized_for(std::uint64_t keys);
  /// From its stored form; nullopt when the words do not fit bit_count.
  static std::optional<KeyBloom> from_bytes(std::uint64_t bit_count, int hashes,
                                            const std::string& bytes);
  void add(const KeyHash& key);
  bool may_contain(const KeyHash& key) const;
  /// Asks the CPU to fetch the cache line may_contain(key) will read.
  void prefetch(const KeyHash& key) const { __builtin_prefetch(&words_[block_of(key)]); }
  std::uint64_t bit_count() const { return bit_count_; }
  int hashes() const { return hashes_; }
  std::string bytes() const;  ///< the bits, little-endian 64-bit words
  std::size_t memory_bytes() const { return words_.size() * sizeof(std::uint64_t); }

 private:
  KeyBloom(std::uint64_t bit_count, int hashes);
  std::size_t block_of(const KeyHash& key) const;  ///< index of its first word
  std::uint64_t bit_count_;
  int hashes_;
  std::vector<std::uint64_t> words_;
};

/// One sealed partition's filter, with the partition's range of stored_at
/// (microseconds since the epoch; from nullopt: MINVALUE).
struct SealedFilter {
  std::string partition;
  std::optional<std::int64_t> from_micros;
  std::int64_t to_micros = 0;
  KeyBloom bloom;
};

/// What a batch's lookup can skip: every partition that ends at or before
/// `cut` has a filter here (the oldest partitions, without a gap).
struct FilterSet {
  std::optional<std::int64_t> cut;  ///< nullopt: no filters, look in every partition
  std::vector<std::shared_ptr<const SealedFilter>> filters;  ///< oldest first
  std::size_t memory_bytes = 0;
};

/// The filters a processor holds, shared by its workers (which read a
/// snapshot) and its retention thread (which refreshes it).
class KeyFilters {
 public:
  explicit KeyFilters(std::size_t max_bytes) : max_bytes_(max_bytes) {}
  std::shared_ptr<const FilterSet> snapshot() const;
  /// Loads the filters of key_filters for the oldest partitions, in order,
  /// up to the first partition without one or max_bytes; forgets those of
  /// partitions dropped. Throws pqxx errors (the set in use is kept).
  void refresh(pqxx::connection& conn);

 private:
  std::size_t max_bytes_;
  mutable std::mutex mutex_;
  std::shared_ptr<const FilterSet> set_ = std::make_shared<FilterSet>();
};

/// Run by the processor that holds the partition lock: builds the filter of
/// each sealed partition that has none, oldest first, and deletes those of
/// partitions no longer attached. `margin_micros`: how long after its end a
/// partition is sealed at the earliest; none is built past `max_bytes` (a
/// processor could not hold it). Returns the partitions filtered now.
/// Throws pqxx errors.
std::vector<std::string> build_key_filters(pqxx::connection& conn, std::int64_t margin_micros,
                                           std::size_t max_bytes = std::size_t{256} << 20);

}  // namespace processor
