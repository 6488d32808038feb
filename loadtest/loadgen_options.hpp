#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "body_coding.hpp"
#include "workload.hpp"

/// The pieces of the loadgen program (loadgen.cpp, loadgen_options.cpp,
/// loadgen_report.cpp, publisher.cpp, pipeline_stats.cpp).
namespace loadgen {

using Clock = std::chrono::steady_clock;

/// loadgen's command line, read and checked.
struct Options {
  std::uint16_t port = 0;
  std::string url;
  std::string authorization;
  /// Send "Connection: keep-alive" (standard clients send no Connection header).
  bool keep_alive_header = false;
  /// The body's format and coding (--body, --gzip): a JSON array by default.
  loadtest::BodyCoding coding;
  loadtest::WorkloadConfig workload;
  std::size_t connections = 8;
  double rate = 0;  // events per second, 0 = unbounded
  std::chrono::milliseconds duration{0};
  std::chrono::milliseconds drain_timeout{120000};
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds sample_interval{1000};
  int max_retries = 20;
  bool verify = true;
  bool quiet = false;
  std::string json_path;
  std::string get_path;  ///< GET this path instead of publishing (an HTTP baseline)
};

/// Reads and checks loadgen's flags (loadgen_options.cpp): nullopt after
/// --help. Throws std::invalid_argument for a bad flag or combination.
std::optional<Options> read_options(int argc, const char* const* argv);

/// Set by SIGINT/SIGTERM: stop publishing, finish what is in flight.
extern std::atomic<bool> g_interrupted;

inline double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace loadgen
