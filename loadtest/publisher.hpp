#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "loadgen_options.hpp"
#include "pipeline_stats.hpp"
#include "workload.hpp"

namespace loadgen {

/// What the publishing phase did, counted from the answers.
struct Totals {
  std::uint64_t requests = 0;    // attempts sent, retries included
  std::uint64_t bytes_sent = 0;  // of those attempts: request line, headers and body
  std::uint64_t retries = 0;
  std::uint64_t responses = 0;
  std::map<int, std::uint64_t> status_counts;
  std::uint64_t connection_errors = 0;  // refused, reset or closed without an answer
  std::uint64_t timeouts = 0;
  std::uint64_t accepted = 0;  // per-event results of the answers
  std::uint64_t duplicates = 0;
  std::uint64_t delivered = 0;  // taken; the protocol's answer does not say whether new
  std::uint64_t rejected = 0;
  std::uint64_t failed = 0;
  // Events of attempts whose fate is unknown (no answer, or "failed"): each
  // may have reached the broker, and its retry then counts as a duplicate.
  std::uint64_t ambiguous = 0;
  std::uint64_t gave_up = 0;    // events dropped after --max-retries
  std::uint64_t permanent = 0;  // events of requests answered 4xx (not 429)
  std::string first_error;
  std::vector<std::uint32_t> latencies_us;
};

struct PublishResult {
  Totals totals;
  Clock::time_point first_send;  ///< the first request left
  Clock::time_point end;         ///< the last answer came
};

/// Called for each event an answer reported accepted: its key and the time
/// the answer arrived (bench_subscribe measures delivery from there).
using AcceptedCallback = std::function<void(std::uint64_t key, Clock::time_point answered)>;

/// Counts a shipper protocol's answer (not 429 or 5xx) to a request of
/// `events` into `totals`, calling `on_accepted` for each event it says is
/// new; returns the events to send again (bulk items refused for now). An
/// answer without the protocol's shape counts them all as refused for good;
/// `*error` then says why.
std::vector<loadtest::PlannedEvent> count_protocol_answer(
    loadtest::Protocol protocol, const std::vector<loadtest::PlannedEvent>& events, int status,
    std::string_view body, Totals& totals, const AcceptedCallback& on_accepted,
    Clock::time_point now, std::string* error);

/// Publishes the workload's events over o.connections keep-alive connections
/// from one epoll loop, retrying (bounded) requests without an answer and
/// the failed events of a 503 or 429, until every planned event has an
/// answer or was given up on. Prints a progress line every second.
PublishResult publish(const Options& o, loadtest::Workload& workload, StatsSampler& sampler,
                      Clock::time_point start, AcceptedCallback on_accepted = {});

}  // namespace loadgen
