// The processes of a job launched by the command-line tests, found by a tag in their environment
// (MODELONE_BATTERY_TAG): whether any outlived the job, and how much CPU one has used.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/cli_support.h"

namespace modelone::test {

double seconds_since(std::chrono::steady_clock::time_point t0);
std::string slurp(const std::filesystem::path& p);
// CPU seconds (user + system) a process has used.
double cpu_seconds(pid_t pid);
// Processes whose environment holds MODELONE_BATTERY_TAG=tag (and `also`, when given): the job's
// ranks (and mpirun).
std::vector<pid_t> tagged_processes(const std::string& tag, const std::string& also = "");
// Whether every tagged process has gone within `secs` (a singleton's orted outlives its rank by
// a few milliseconds).
bool all_gone(const std::string& tag, double secs = 3.0);

// One launch of a case: its output, and the seconds until the last process of the job had gone.
struct Launch {
  Result r;
  double secs = 0;
  bool gone = false;
};
// Runs `modelone args` at np ranks (0: a plain process), its processes tagged in their
// environment so that any left behind can be found.
Launch launch_tagged(const std::string& args, int np, const std::string& tag);

}  // namespace modelone::test
