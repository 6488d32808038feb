#include "key_filters.hpp"

#include <openssl/evp.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <chrono>
#include <map>
#include <stdexcept>

#include "batch_plan.hpp"
#include "pipeline/logging.hpp"
#include "processor/batch_writer.hpp"
#include "processor/partitions.hpp"
#include "sealed_ranges.hpp"

namespace processor {
namespace {

// 16 bits: 0.19% false positives (12 bits: 0.57%; 20: 0.10%), measured with
// 48 filters of 1 M random keys; each false positive is a key the batch
// looks up in that partition (at 48 filters and 360 keys a batch, 33 such
// lookups against 98 with 12 bits).
constexpr std::uint64_t kBitsPerKey = 16;
constexpr int kHashes = 8;
// Each key's bits lie in one block of a cache line (512 bits): a lookup
// costs one memory access, not one per probe (a batch checks every key
// against every filter). Putze, Sanders and Singler, "Cache-, hash- and
// space-efficient Bloom filters".
constexpr std::uint64_t kBlockBits = 512;
// Keys read per statement while a filter is built (keyset pages of the
// partition's key index: bounded memory, short statements).
constexpr int kBuildPage = 100'000;
// A pass builds filters for at most this long; the next pass goes on.
constexpr std::chrono::seconds kBuildBudget{60};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::uint64_t word_at(const KeyHash& key, std::size_t offset) {
  std::uint64_t word = 0;
  for (std::size_t i = 0; i < 8; ++i) word |= std::uint64_t{key[offset + i]} << (8 * i);
  return word;
}

// bytea as PostgreSQL prints it by default: "\x" and hex digits.
std::optional<std::string> unhex_bytea(const std::string& text) {
  if (text.size() < 2 || text[0] != '\\' || text[1] != 'x' || text.size() % 2 != 0) return {};
  std::string out((text.size() - 2) / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_digit(text[2 + 2 * i]);
    const int lo = hex_digit(text[3 + 2 * i]);
    if (hi < 0 || lo < 0) return {};
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return out;
}

// nullopt when the filter would take more than max_bytes.
std::optional<KeyBloom> build_filter(pqxx::connection& conn, const std::string& partition,
                                     std::size_t max_bytes) {
  pqxx::work tx(conn);
  tx.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
  const auto keys = tx.exec("SELECT count(*) FROM " + partition)[0][0].as<std::uint64_t>();
  KeyBloom bloom = KeyBloom::sized_for(keys);
  if (bloom.memory_bytes() > max_bytes) return {};
  std::string last;
  const std::string limit = " ORDER BY key_hash LIMIT " + std::to_string(kBuildPage);
  const std::string first = "SELECT key_hash::text FROM " + partition + limit;
  const std::string next =
      "SELECT key_hash::text FROM " + partition + " WHERE key_hash > $1::uuid" + limit;
  for (;;) {
    const pqxx::result rows = last.empty() ? tx.exec(first) : tx.exec_params(next, last);
    for (const auto& row : rows) {
      const auto key = parse_key_hash(row[0].c_str());
      if (!key) throw std::runtime_error("key_filters: a key_hash that is not a uuid");
      bloom.add(*key);
    }
    if (rows.size() < static_cast<std::size_t>(kBuildPage)) break;
    last = rows.back()[0].as<std::string>();
  }
  tx.commit();
  return bloom;
}

void store_filter(pqxx::connection& conn, const Partition& p, const KeyBloom& bloom) {
  pqxx::work tx(conn);
  tx.exec_params(
      "INSERT INTO key_filters (partition, to_micros, bit_count, hashes, bits) "
      "VALUES ($1, $2, $3, $4, decode($5, 'hex')) ON CONFLICT (partition) DO NOTHING",
      p.name, p.to_micros, static_cast<std::int64_t>(bloom.bit_count()), bloom.hashes(),
      to_hex(bloom.bytes()));
  tx.commit();
}

}  // namespace

std::optional<KeyHash> parse_key_hash(const std::string& text) {
  KeyHash key{};
  std::size_t n = 0;
  int high = -1;
  for (const char c : text) {
    if (c == '-') continue;
    const int digit = hex_digit(c);
    if (digit < 0 || n == key.size()) return {};
    if (high < 0) {
      high = digit;
    } else {
      key[n++] = static_cast<std::uint8_t>(high * 16 + digit);
      high = -1;
    }
  }
  if (n != key.size() || high >= 0) return {};
  return key;
}

KeyHash event_key(const std::string& topic, const std::string& event_id) {
  std::string text;
  text.reserve(topic.size() + 1 + event_id.size());
  text.append(topic).append(1, ':').append(event_id);
  KeyHash key{};
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), key.data(), &size, EVP_md5(), nullptr) != 1 ||
      size != key.size()) {
    throw std::runtime_error("MD5 of an event key failed");
  }
  return key;
}

void append_key_text(std::string& out, const KeyHash& key) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kDigits[key[i] >> 4];
    out += kDigits[key[i] & 0xF];
  }
}

std::string key_text(const KeyHash& key) {
  std::string out;
  out.reserve(36);
  append_key_text(out, key);
  return out;
}

KeyBloom::KeyBloom(std::uint64_t bit_count, int hashes)
    : bit_count_(bit_count), hashes_(hashes), words_((bit_count + 63) / 64, 0) {}

KeyBloom KeyBloom::sized_for(std::uint64_t keys) {
  const std::uint64_t bits = std::max<std::uint64_t>(kBlockBits, keys * kBitsPerKey);
  return KeyBloom((bits + kBlockBits - 1) / kBlockBits * kBlockBits, kHashes);
}

std::optional<KeyBloom> KeyBloom::from_bytes(std::uint64_t bit_count, int hashes,
                                             const std::string& bytes) {
  if (bit_count == 0 || bit_count % kBlockBits != 0 || hashes < 1 || hashes > 32 ||
      bytes.size() != bit_count / 8) {
    return {};
  }
  KeyBloom bloom(bit_count, hashes);
  for (std::size_t w = 0; w < bloom.words_.size(); ++w) {
    std::uint64_t word = 0;
    for (std::size_t i = 0; i < 8; ++i) {
      word |= std::uint64_t{static_cast<unsigned char>(bytes[w * 8 + i])} << (8 * i);
    }
    bloom.words_[w] = word;
  }
  return bloom;
}

// The key is an MD5: its halves are independent uniform hashes already. The
// first picks the block (multiply-shift, no division), the second the bits
// in it (double hashing, Kirsch and Mitzenmacher).
std::size_t KeyBloom::block_of(const KeyHash& key) const {
  const std::uint64_t blocks = bit_count_ / kBlockBits;
  __extension__ using Wide = unsigned __int128;  // GCC and Clang; the high half of the product
  const Wide scaled = static_cast<Wide>(word_at(key, 0)) * blocks;
  return static_cast<std::size_t>(scaled >> 64) * (kBlockBits / 64);
}

void KeyBloom::add(const KeyHash& key) {
  std::uint64_t* block = &words_[block_of(key)];
  const std::uint64_t h2 = word_at(key, 8);
  const auto a = static_cast<std::uint32_t>(h2);
  const auto b = static_cast<std::uint32_t>(h2 >> 32) | 1U;
  for (int i = 0; i < hashes_; ++i) {
    const std::uint32_t bit = (a + static_cast<std::uint32_t>(i) * b) % kBlockBits;
    block[bit / 64] |= std::uint64_t{1} << (bit % 64);
  }
}

bool KeyBloom::may_contain(const KeyHash& key) const {
  const std::uint64_t* block = &words_[block_of(key)];
  const std::uint64_t h2 = word_at(key, 8);
  const auto a = static_cast<std::uint32_t>(h2);
  const auto b = static_cast<std::uint32_t>(h2 >> 32) | 1U;
  for (int i = 0; i < hashes_; ++i) {
    const std::uint32_t bit = (a + static_cast<std::uint32_t>(i) * b) % kBlockBits;
    if ((block[bit / 64] & (std::uint64_t{1} << (bit % 64))) == 0) return false;
  }
  return true;
}

std::string KeyBloom::bytes() const {
  std::string out(words_.size() * 8, '\0');
  for (std::size_t w = 0; w < words_.size(); ++w) {
    for (std::size_t i = 0; i < 8; ++i) {
      out[w * 8 + i] = static_cast<char>((words_[w] >> (8 * i)) & 0xff);
    }
  }
  return out;
}

std::shared_ptr<const FilterSet> KeyFilters::snapshot() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return set_;
}

void KeyFilters::refresh(pqxx::connection& conn) {
  const auto current = snapshot();
  std::map<std::string, std::shared_ptr<const SealedFilter>> held;
  for (const auto& f : current->filters) held[f->partition] = f;
  auto next = std::make_shared<FilterSet>();
  for (const Partition& p : list_partitions(conn)) {
    if (p.detach_pending) continue;  // no query sees it any more; it is being dropped
    std::shared_ptr<const SealedFilter> filter;
    const auto it = held.find(p.name);
    if (it != held.end() && it->second->to_micros == p.to_micros) {
      filter = it->second;
    } else {
      pqxx::nontransaction tx(conn);
      const pqxx::result r = tx.exec_params(
          "SELECT bit_count, hashes, bits FROM key_filters WHERE partition = $1 AND to_micros = $2",
          p.name, p.to_micros);
      if (r.empty()) break;
      auto bytes = unhex_bytea(r[0][2].as<std::string>());
      std::optional<KeyBloom> bloom;
      if (bytes)
        bloom = KeyBloom::from_bytes(r[0][0].as<std::uint64_t>(), r[0][1].as<int>(), *bytes);
      if (!bloom) {
        pipeline::log::warn("key_filter_unreadable", {{"partition", p.name}});
        break;
      }
      filter = std::make_shared<const SealedFilter>(
          SealedFilter{p.name, p.from_micros, p.to_micros, std::move(*bloom)});
    }
    if (next->memory_bytes + filter->bloom.memory_bytes() > max_bytes_) break;
    next->memory_bytes += filter->bloom.memory_bytes();
    next->cut = p.to_micros;
    next->filters.push_back(std::move(filter));
  }
  const std::lock_guard<std::mutex> lock(mutex_);
  set_ = std::move(next);
}

std::vector<std::string> build_key_filters(pqxx::connection& conn, std::int64_t margin_micros,
                                           std::size_t max_bytes) {
  const auto started = std::chrono::steady_clock::now();
  const auto partitions = list_partitions(conn);
  std::vector<std::string> made;
  for (const Partition* p : sealed_without_row(conn, "key_filters", partitions, margin_micros)) {
    if (std::chrono::steady_clock::now() - started > kBuildBudget) break;
    const auto bloom = build_filter(conn, p->name, max_bytes);
    if (!bloom) break;  // nor a later one: the filters are held oldest first
    store_filter(conn, *p, *bloom);
    made.push_back(p->name);
  }
  return made;
}

}  // namespace processor
