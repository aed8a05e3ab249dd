#include "dist/memory_limit.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

namespace modelone {

namespace {

std::string gib(int64_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f GiB", double(b) / double(int64_t(1) << 30));
  return s;
}

int64_t meminfo_available() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return -1;
}

// This process's cgroup path in /proc/self/cgroup for a v2 line ("0::/path") or the v1 memory
// controller's ("N:memory:/path"); "" when there is none.
std::string own_cgroup(bool v2) {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  const std::string tag = v2 ? "0::" : ":memory:";
  while (std::getline(f, line)) {
    const size_t at = line.find(tag);
    if (at != std::string::npos && (!v2 || at == 0)) return line.substr(at + tag.size());
  }
  return "";
}

// The limit of this process's own cgroup (a job's slice under a batch system), then the mount
// root's (a container sees its own group there), v2 then v1; -1 when unlimited or absent.
int64_t cgroup_limit() {
  std::vector<std::string> paths;
  const std::string v2 = own_cgroup(true), v1 = own_cgroup(false);
  if (!v2.empty() && v2 != "/") paths.push_back("/sys/fs/cgroup" + v2 + "/memory.max");
  paths.push_back("/sys/fs/cgroup/memory.max");
  if (!v1.empty() && v1 != "/")
    paths.push_back("/sys/fs/cgroup/memory" + v1 + "/memory.limit_in_bytes");
  paths.push_back("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  for (const std::string& path : paths) {
    std::ifstream f(path);
    std::string v;
    if (!(f >> v) || v == "max") continue;
    try {
      const int64_t b = std::stoll(v);
      if (b > 0 && b < (int64_t(1) << 60)) return b;
    } catch (...) {
    }
  }
  return -1;
}

}  // namespace

MemoryLimit rank_memory_limit(int local_ranks) {
  local_ranks = std::max(1, local_ranks);
  MemoryLimit m;
  int64_t node = meminfo_available();
  std::string what = "MemAvailable " + gib(node);
  if (const int64_t cg = cgroup_limit(); cg > 0 && (node < 0 || cg < node)) {
    node = cg;
    what = "the cgroup's memory.max " + gib(cg);
  }
  if (node > 0) {
    m.bytes = node / local_ranks;
    m.source = what + (local_ranks > 1 ? " over " + std::to_string(local_ranks) + " ranks on this node" : "");
  }
  rlimit r{};
  if (getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY &&
      (m.bytes == 0 || int64_t(r.rlim_cur) < m.bytes)) {
    m.bytes = int64_t(r.rlim_cur);
    m.source = "the address-space limit (ulimit -v) " + gib(m.bytes);
  }
  return m;
}

}  // namespace modelone
