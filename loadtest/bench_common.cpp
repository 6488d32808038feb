#include "bench_common.hpp"

#include <unistd.h>

#include <fstream>
#include <iostream>
#include <stdexcept>

#include "workload_flags.hpp"

namespace loadtest::bench {

void add_workload_flags(Flags& flags) { loadtest::add_workload_flags(flags, "100000"); }

WorkloadConfig workload_from_flags(const Flags& flags) {
  WorkloadConfig w = loadtest::workload_from_flags(flags);
  if (w.events == 0) throw std::invalid_argument("--events must be at least 1");
  w.run_id = "rbench000";  // as long as loadgen's run ids: the same message size
  return w;
}

std::vector<pipeline::Event> normalized_events(const WorkloadConfig& config,
                                               std::vector<bool>* duplicate) {
  Workload workload(config);
  std::vector<pipeline::Event> events;
  events.reserve(config.events);
  std::vector<PlannedEvent> batch;
  const pipeline::ValidationLimits limits;
  while (workload.next_batch(batch)) {
    const pipeline::PublishBody body =
        pipeline::parse_publish_body(workload.request_body(batch), limits);
    if (body.error) throw std::runtime_error("workload body refused: " + body.error->message);
    for (std::size_t i = 0; i < body.verdicts.size(); ++i) {
      if (!body.verdicts[i].event)
        throw std::runtime_error("event refused: " + body.verdicts[i].error);
      events.push_back(*body.verdicts[i].event);
      if (duplicate != nullptr) duplicate->push_back(batch[i].duplicate);
    }
  }
  return events;
}

std::string scratch_name(const std::string& prefix) {
  return prefix + "_" + std::to_string(::getpid());
}

void report(const std::string& stage, nlohmann::json result, std::uint64_t workload_events,
            double seconds, const std::string& json_path) {
  result["stage"] = stage;
  result["seconds"] = seconds;
  result["workload_events"] = workload_events;
  result["workload_events_per_second"] = static_cast<double>(workload_events) / seconds;
  std::cout << stage << ": " << result.dump() << "\n";
  if (!json_path.empty()) {
    std::ofstream file(json_path);
    file << result.dump(2) << "\n";
    if (!file) throw std::runtime_error("cannot write " + json_path);
  }
}

int guarded_main(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::invalid_argument& e) {
    std::cerr << program << ": " << e.what() << " (see --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace loadtest::bench
