// See job_processes.h.
#include "tests/job_processes.h"

#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

namespace modelone::test {

namespace fs = std::filesystem;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// CPU seconds (user + system) a process has used: /proc/PID/stat fields 14 and 15, in ticks.
double cpu_seconds(pid_t pid) {
  const std::string st = slurp("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = st.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream in(st.substr(close + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

namespace {
// Whether a process's environment (/proc/PID/environ: NUL-separated) holds the entry exactly.
bool has_env(const fs::path& proc, const std::string& entry) {
  const std::string env = slurp(proc / "environ");
  for (size_t p = 0; (p = env.find(entry, p)) != std::string::npos; p += entry.size())
    if ((p == 0 || env[p - 1] == '\0') && (p + entry.size() == env.size() || env[p + entry.size()] == '\0'))
      return true;
  return false;
}
}  // namespace

// Processes whose environment holds MODELONE_BATTERY_TAG=tag (and `also`, when given): the job's
// ranks (and mpirun).
std::vector<pid_t> tagged_processes(const std::string& tag, const std::string& also) {
  std::vector<pid_t> pids;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (has_env(e.path(), "MODELONE_BATTERY_TAG=" + tag) && (also.empty() || has_env(e.path(), also)))
      pids.push_back(pid_t(std::stol(name)));
  }
  return pids;
}

// Whether every tagged process has gone within `secs` (a singleton's orted outlives its rank by
// a few milliseconds).
bool all_gone(const std::string& tag, double secs) {
  const auto t0 = std::chrono::steady_clock::now();
  while (!tagged_processes(tag).empty()) {
    if (seconds_since(t0) > secs) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// Runs `modelone args` at np ranks (0: a plain process), its processes tagged in their
// environment so that any left behind can be found.
Launch launch_tagged(const std::string& args, int np, const std::string& tag) {
  Launch l;
  const auto t0 = std::chrono::steady_clock::now();
  l.r = run_with_env(args, np, "MODELONE_BATTERY_TAG=" + tag);
  l.gone = all_gone(tag);
  l.secs = seconds_since(t0);
  return l;
}

}  // namespace modelone::test
