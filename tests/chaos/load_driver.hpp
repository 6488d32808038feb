#pragma once

// The chaos cases' load: events with repeats, and what became of each send.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "commit_cutter.hpp"
#include "http_client.hpp"
#include "pipeline/database.hpp"
#include "pipeline/jetstream.hpp"
#include "servers.hpp"

namespace testsupport {

using nlohmann::json;
using namespace std::chrono_literals;

// What one send (one event in one request) came to.
enum class Fate {
  kNotSent,
  kUncertain,  ///< no answer, or a 5xx / "failed": the broker may or may not have it
  kAcked,      ///< a 2xx with "accepted" or "duplicate": the broker has it, counted
};

// Publishes `sends` events from four clients, ten to a request, paced so
// that the load lasts a few seconds. 30% of the sends repeat an earlier key
// with another payload (version 1, 2, ...); a key is repeated only once its
// previous send was answered, so that its first send is its first write.
// Bounded in count and in time.
class LoadDriver {
 public:
  LoadDriver(std::uint16_t port, int sends, std::uint32_t seed, std::string prefix = "ev")
      : port_(port) {
    std::mt19937 random(seed);
    std::uniform_real_distribution<double> coin(0, 1);
    std::vector<int> versions;
    for (int i = 0; i < sends; ++i) {
      if (!versions.empty() && coin(random) < 0.3) {
        const std::size_t k = random() % versions.size();
        sends_.push_back({k, versions[k]++});
      } else {
        sends_.push_back({versions.size(), 0});
        versions.push_back(1);
      }
    }
    keys_ = versions.size();
    prefix_ = std::move(prefix);
    fates_.assign(sends_.size(), Fate::kNotSent);
    answered_ = std::make_unique<std::atomic<bool>[]>(keys_);
    for (std::size_t k = 0; k < keys_; ++k) answered_[k] = false;
  }

  json event(std::size_t key, int version) const {
    return {{"topic", "chaos." + std::to_string(key % 4)},
            {"event_id", prefix_ + "-" + std::to_string(key)},
            {"timestamp", "2026-11-24T10:00:00Z"},
            {"source", "chaos"},
            {"payload", {{"n", key}, {"version", version}}}};
  }
  std::string key_name(std::size_t key) const {
    return "chaos." + std::to_string(key % 4) + ":" + prefix_ + "-" + std::to_string(key);
  }

  void run(std::chrono::milliseconds pace, std::chrono::seconds time_limit) {
    const auto deadline = std::chrono::steady_clock::now() + time_limit;
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> clients;
    clients.reserve(4);
    for (int c = 0; c < 4; ++c) {
      clients.emplace_back([&] {
        HttpClient client(port_, 10000);
        for (std::size_t start; (start = next.fetch_add(10)) < sends_.size();) {
          if (std::chrono::steady_clock::now() > deadline) break;
          const std::size_t end = std::min(sends_.size(), start + 10);
          json batch = json::array();
          std::set<std::size_t> in_batch;
          for (std::size_t i = start; i < end; ++i) {
            const Send& send = sends_[i];
            // A repeat waits for the key's earlier send to be answered (in
            // the same request, the earlier send comes first anyway).
            if (send.version > 0 && in_batch.insert(send.key).second) {
              while (!answered_[send.key] && std::chrono::steady_clock::now() < deadline) {
                std::this_thread::sleep_for(1ms);
              }
            }
            in_batch.insert(send.key);
            batch.push_back(event(send.key, send.version));
          }
          const HttpResponse response = client.post("/publish", batch.dump());
          record(start, end, response);
          // Like a real client, back off while the service is unreachable,
          // so the load outlasts the faults instead of burning its sends.
          std::this_thread::sleep_for(response.status == 0 ? pace * 5 : pace);
        }
      });
    }
    for (auto& t : clients) t.join();
  }

  std::size_t keys() const { return keys_; }
  /// The fate of each send of `key`, in order.
  std::vector<Fate> fates(std::size_t key) const {
    std::vector<std::pair<int, Fate>> found;
    for (std::size_t i = 0; i < sends_.size(); ++i) {
      if (sends_[i].key == key) found.emplace_back(sends_[i].version, fates_[i]);
    }
    std::sort(found.begin(), found.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Fate> out;
    out.reserve(found.size());
    for (const auto& f : found) out.push_back(f.second);
    return out;
  }
  std::size_t sends_made() const { return count(Fate::kUncertain) + count(Fate::kAcked); }
  std::size_t sends_acked() const { return count(Fate::kAcked); }
  std::size_t sends_uncertain() const { return count(Fate::kUncertain); }
  std::size_t requests() const { return requests_; }
  std::size_t requests_503() const { return requests_503_; }
  std::size_t requests_unanswered() const { return requests_unanswered_; }

 private:
  struct Send {
    std::size_t key;
    int version;
  };

  std::size_t count(Fate fate) const {
    return static_cast<std::size_t>(std::count(fates_.begin(), fates_.end(), fate));
  }

  void record(std::size_t start, std::size_t end, const HttpResponse& response) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++requests_;
    if (response.status == 503) ++requests_503_;
    if (response.status == 0) ++requests_unanswered_;
    json body;
    if (response.status != 0) body = json::parse(response.body, nullptr, false);
    for (std::size_t i = start; i < end; ++i) {
      Fate fate = Fate::kUncertain;
      const std::size_t index = i - start;
      if (body.is_object() && body.contains("results") && index < body["results"].size()) {
        const auto& status = body["results"][index]["status"];
        // A result counts only in a 2xx answer: that is the promise.
        if (response.status / 100 == 2 && (status == "accepted" || status == "duplicate")) {
          fate = Fate::kAcked;
        }
      }
      fates_[i] = fate;
      answered_[sends_[i].key] = true;
    }
  }

  std::uint16_t port_;
  std::string prefix_;
  std::size_t keys_ = 0;
  std::vector<Send> sends_;
  std::unique_ptr<std::atomic<bool>[]> answered_;
  std::mutex mutex_;
  std::vector<Fate> fates_;
  std::size_t requests_ = 0;
  std::size_t requests_503_ = 0;
  std::size_t requests_unanswered_ = 0;
};

}  // namespace testsupport
