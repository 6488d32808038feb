#pragma once

#include "flags.hpp"
#include "workload.hpp"

namespace loadtest {

/// Declares the flags that define a workload, shared by loadgen and the
/// stage benches so that they plan the same events: --events, --batch,
/// --duplicates, --within-request, --topics, --payload-bytes, --seed, --json.
void add_workload_flags(Flags& flags, const std::string& default_events);

/// Reads them back (the run id stays at its default).
WorkloadConfig workload_from_flags(const Flags& flags);

}  // namespace loadtest
