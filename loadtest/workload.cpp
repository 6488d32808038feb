#include "workload.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <stdexcept>

namespace loadtest {
namespace {

// Duplicates across requests repeat one of this many most recent keys, so
// that in a short run they land inside the broker's duplicate window.
constexpr std::uint64_t kRecentKeys = 10000;

// 2026-01-01T00:00:00Z: keys get timestamps from here, one millisecond apart.
constexpr std::int64_t kBaseEpochMs = 1767225600000;

}  // namespace

std::string format_rfc3339_ms(std::int64_t epoch_ms) {
  const std::time_t seconds = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(epoch_ms % 1000));
  return buf;
}

Workload::Workload(WorkloadConfig config)
    : config_(std::move(config)), rng_(config_.seed), base_ms_(kBaseEpochMs) {
  if (config_.batch == 0) throw std::invalid_argument("batch must be at least 1");
  if (config_.topics == 0) throw std::invalid_argument("topics must be at least 1");
  if (config_.duplicate_ratio < 0 || config_.duplicate_ratio >= 1) {
    throw std::invalid_argument("duplicate ratio must be in [0, 1)");
  }
  if (config_.events > 0) {
    target_duplicates_ = static_cast<std::uint64_t>(
        std::llround(static_cast<double>(config_.events) * config_.duplicate_ratio));
    target_duplicates_ = std::min(target_duplicates_, config_.events - 1);
  }
  // Letters drawn from the seed's own generator (not rng_, so that the
  // payload size does not change the plan). Each key's pad is its own
  // stretch of them (payload_json), so that a body of many events does not
  // compress better than its events do (gzip would remove a repeated pad).
  std::mt19937_64 pad_rng(config_.seed ^ 0x9e3779b97f4a7c15ULL);
  pad_.resize(kPadSource + config_.payload_bytes);
  for (auto& c : pad_) c = static_cast<char>('a' + pad_rng() % 26);
}

double Workload::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

bool Workload::next_is_duplicate() {
  if (unique_ == 0) return false;
  if (config_.events == 0) return uniform() < config_.duplicate_ratio;
  // Selection sampling: exactly target_duplicates_ over the whole plan.
  const std::uint64_t remaining_slots = config_.events - planned_;
  const std::uint64_t remaining_dups = target_duplicates_ - (planned_ - unique_);
  return uniform() * static_cast<double>(remaining_slots) < static_cast<double>(remaining_dups);
}

bool Workload::next_batch(std::vector<PlannedEvent>& out) {
  out.clear();
  while (out.size() < config_.batch && (config_.events == 0 || planned_ < config_.events)) {
    PlannedEvent slot;
    if (next_is_duplicate()) {
      slot.duplicate = true;
      const bool within = !out.empty() && uniform() < config_.within_request_share;
      if (within) {
        slot.key = out[rng_() % out.size()].key;
      } else {
        const std::uint64_t window = std::min(unique_, kRecentKeys);
        slot.key = unique_ - 1 - rng_() % window;
      }
      // A "recent key" may also be one of this request's.
      const bool same_request = std::any_of(
          out.begin(), out.end(), [&](const PlannedEvent& e) { return e.key == slot.key; });
      if (same_request) ++within_;
    } else {
      slot.key = unique_++;
    }
    out.push_back(slot);
    ++planned_;
  }
  return !out.empty();
}

std::string Workload::topic(std::uint64_t key) const {
  return config_.topic_prefix + std::to_string(key % config_.topics);
}

std::string Workload::event_id(std::uint64_t key) const {
  return config_.run_id + "-" + std::to_string(key);
}

std::string Workload::timestamp(std::uint64_t key) const {
  return format_rfc3339_ms(timestamp_ms(key));
}

std::int64_t Workload::timestamp_ms(std::uint64_t key) const {
  return base_ms_ + static_cast<std::int64_t>(key);
}

std::string Workload::payload_json(std::uint64_t key) const {
  // {"i":<key>,"pad":"<letters>"} padded to payload_bytes (keys in the order
  // a JSON library serialises them, so ingest re-serialises the same bytes).
  std::string out = "{\"i\":" + std::to_string(key) + ",\"pad\":\"";
  const std::size_t fixed = out.size() + 2;
  const std::size_t pad = config_.payload_bytes > fixed ? config_.payload_bytes - fixed : 0;
  // A stretch of pad_ at an offset of the key's own (SplitMix64 of the key).
  std::uint64_t z = key + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  out.append(pad_, static_cast<std::size_t>((z ^ (z >> 31)) % kPadSource), pad);
  out += "\"}";
  return out;
}

void Workload::append_event_json(std::string& out, std::uint64_t key) const {
  // Every field is plain ASCII without quotes or backslashes: no escaping.
  out += "{\"topic\":\"";
  out += topic(key);
  out += "\",\"event_id\":\"";
  out += event_id(key);
  out += "\",\"timestamp\":\"";
  out += timestamp(key);
  out += "\",\"source\":\"loadgen\",\"payload\":";
  out += payload_json(key);
  out += '}';
}

std::string Workload::request_body(const std::vector<PlannedEvent>& events) const {
  std::string body;
  body.reserve(events.size() * (config_.payload_bytes + 140) + 2);
  body += '[';
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (i != 0) body += ',';
    append_event_json(body, events[i].key);
  }
  body += ']';
  return body;
}

}  // namespace loadtest
