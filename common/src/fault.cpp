#include "pipeline/fault.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace pipeline::fault {
namespace {

struct FaultConfig {
  std::string point;
  long skip = 0;
};

const FaultConfig& config() {
  // Read once, on first use (thread-safe static initialisation).
  static const FaultConfig kConfig = [] {
    FaultConfig c;
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read once; nothing sets the environment
    if (const char* point = std::getenv("FAULT_POINT")) c.point = point;
    // NOLINTNEXTLINE(concurrency-mt-unsafe)
    if (const char* skip = std::getenv("FAULT_POINT_SKIP")) {
      c.skip = std::strtol(skip, nullptr, 10);
    }
    return c;
  }();
  return kConfig;
}

std::atomic<long> hits{0};

}  // namespace

void crash_point(const char* point) {
  const FaultConfig& c = config();
  if (c.point.empty() || c.point != point) return;
  if (hits.fetch_add(1) < c.skip) return;
  static constexpr char kMessage[] = "FAULT_POINT reached: killing this process\n";
  (void)::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
  ::kill(::getpid(), SIGKILL);
}

}  // namespace pipeline::fault
