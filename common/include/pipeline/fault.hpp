#pragma once

namespace pipeline::fault {

/// Named crash points for the chaos tests. When the environment variable
/// FAULT_POINT names `point` (e.g. "processor.after_commit_before_ack"), the
/// process kills itself with SIGKILL the moment it gets there, exactly as if
/// it had been killed from outside. FAULT_POINT_SKIP=N lets the first N hits
/// pass. Without FAULT_POINT this is one relaxed atomic load.
void crash_point(const char* point);

}  // namespace pipeline::fault
