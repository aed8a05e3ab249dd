// The ranks' binding report: see binding.h.
#include "dist/binding.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "model/base/check.h"

namespace modelone {

std::string cpu_list_text(const std::vector<int>& cpus) {
  std::string s;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!s.empty()) s += ',';
    s += std::to_string(cpus[i]);
    if (j > i) s += '-' + std::to_string(cpus[j]);
    i = j + 1;
  }
  return s;
}

namespace {

// One cpu id of a list: digits only.
int cpu_id(const std::string& s, const std::string& text) {
  const bool digits = !s.empty() && s.size() <= 6 &&
                      std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  MO_REQUIRE(digits, "cpu list '", text, "': '", s, "' is not a cpu number");
  return std::stoi(s);
}

}  // namespace

std::vector<int> parse_cpu_list(const std::string& text) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  std::vector<int> cpus;
  std::stringstream ss(t);
  std::string part;
  while (std::getline(ss, part, ',')) {
    const size_t dash = part.find('-');
    const int a = cpu_id(part.substr(0, dash), text);
    const int b = dash == std::string::npos ? a : cpu_id(part.substr(dash + 1), text);
    MO_REQUIRE(b >= a, "cpu list '", text, "': range '", part, "' runs backwards");
    for (int c = a; c <= b; ++c) cpus.push_back(c);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

namespace {

// NUMA domain of each listed cpu, from node_root/nodeN/cpulist; empty when the tree is absent.
std::vector<int> numa_of(const std::vector<int>& cpus, const std::string& node_root) {
  std::set<int> nodes;
  for (int n = 0; n < 4096; ++n) {
    std::ifstream f(node_root + "/node" + std::to_string(n) + "/cpulist");
    if (!f) {
      if (n > 0 || !nodes.empty()) break;
      continue;
    }
    std::string text;
    std::getline(f, text);
    for (int c : parse_cpu_list(text))
      if (std::binary_search(cpus.begin(), cpus.end(), c)) nodes.insert(n);
  }
  return {nodes.begin(), nodes.end()};
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

}  // namespace

RankPlace this_place(int threads, const std::string& node_root) {
  RankPlace p;
  p.host = host_name();
  p.threads = threads;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) p.cpus.push_back(c);
  p.numa = numa_of(p.cpus, node_root);
  return p;
}

std::vector<std::string> binding_lines(const std::vector<RankPlace>& places) {
  std::vector<std::string> lines, warn;
  std::map<std::string, std::vector<int>> by_host;  // host -> ranks, in order of first rank
  std::vector<std::string> hosts;
  for (size_t r = 0; r < places.size(); ++r) {
    if (!by_host.count(places[r].host)) hosts.push_back(places[r].host);
    by_host[places[r].host].push_back(int(r));
  }
  for (const std::string& h : hosts) {
    std::string line = "binding: host " + h + ":";
    std::set<int> all;
    int threads = 0;
    for (int r : by_host[h]) {
      const RankPlace& p = places[size_t(r)];
      line += (r == by_host[h].front() ? " rank " : "; rank ") + std::to_string(r) + " cpus " +
              cpu_list_text(p.cpus) + (p.numa.empty() ? "" : " (numa " + cpu_list_text(p.numa) + ")") +
              " x " + std::to_string(p.threads) + (p.threads == 1 ? " thread" : " threads");
      all.insert(p.cpus.begin(), p.cpus.end());
      threads += p.threads;
      if (p.threads > int(p.cpus.size()))
        warn.push_back("warning: rank " + std::to_string(r) + " runs " + std::to_string(p.threads) +
                       " threads on " + std::to_string(p.cpus.size()) +
                       " bound cpu(s): they take turns (--threads, or mpirun --bind-to numa / --map-by ...:PE=N)");
      if (p.numa.size() > 1 && p.threads > 1)
        warn.push_back("note: rank " + std::to_string(r) + "'s cpus span numa " + cpu_list_text(p.numa) +
                       ": one rank per domain (mpirun --map-by numa --bind-to numa) reads near memory only");
    }
    lines.push_back(line);
    if (threads > int(all.size()))
      warn.push_back("warning: host " + h + " runs " + std::to_string(threads) + " threads on " +
                     std::to_string(all.size()) + " cpu(s) bound to its ranks: they take turns");
  }
  lines.insert(lines.end(), warn.begin(), warn.end());
  return lines;
}

std::vector<std::string> gather_binding(const comm::Comm& world, int threads) {
  const RankPlace p = this_place(threads);
  // One text per rank: host, threads, cpus, numa, separated by '\n'.
  const std::string mine = p.host + "\n" + std::to_string(p.threads) + "\n" + cpu_list_text(p.cpus) +
                           "\n" + cpu_list_text(p.numa) + "\n";
  std::vector<int64_t> lens(size_t(world.size()));
  const int64_t len = int64_t(mine.size());
  world.gather(&len, 1, lens.data(), 0);
  std::vector<char> all;
  world.gatherv(mine.data(), len, &all, 0);
  if (world.rank() != 0) return {};
  std::vector<RankPlace> places(size_t(world.size()));
  size_t at = 0;
  for (size_t r = 0; r < places.size(); ++r) {
    std::stringstream ss(std::string(all.data() + at, size_t(lens[r])));
    at += size_t(lens[r]);
    std::string threads_text, cpus, numa;
    std::getline(ss, places[r].host);
    std::getline(ss, threads_text);
    std::getline(ss, cpus);
    std::getline(ss, numa);
    places[r].threads = std::stoi(threads_text);
    places[r].cpus = parse_cpu_list(cpus);
    places[r].numa = parse_cpu_list(numa);
  }
  return binding_lines(places);
}

std::vector<int> round_robin_cpus(const std::vector<int>& pool, int local, int local_size, int threads) {
  const int n = int(pool.size());
  const int64_t all = int64_t(local_size) * threads;
  if (n == 0 || threads >= n || all <= n || all % n != 0) return {};
  std::vector<int> mine;
  for (int j = 0; j < threads; ++j) mine.push_back(pool[size_t((int64_t(local) * threads + j) % n)]);
  std::sort(mine.begin(), mine.end());
  return mine;
}

std::vector<int> bound_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

// Every thread of this process: the running ones here, those it starts later by inheritance
// from the caller's (the main thread's) mask. A thread that refuses keeps its mask.
void bind_process(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  sched_setaffinity(0, sizeof set, &set);
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    const std::string tid = task.path().filename().string();
    if (std::all_of(tid.begin(), tid.end(), [](char c) { return c >= '0' && c <= '9'; }))
      sched_setaffinity(pid_t(std::stol(tid)), sizeof set, &set);
  }
}

namespace {

// Each rank of node's bound cpus, by node rank (collective).
std::vector<std::vector<int>> node_masks(const comm::Comm& node) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) CPU_ZERO(&set);
  std::vector<uint8_t> bytes(sizeof set * size_t(node.size()));
  node.allgather(reinterpret_cast<const uint8_t*>(&set), int64_t(sizeof set), bytes.data());
  std::vector<std::vector<int>> out(size_t(node.size()));
  for (int r = 0; r < node.size(); ++r) {
    cpu_set_t one;
    std::memcpy(&one, &bytes[sizeof set * size_t(r)], sizeof set);
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &one)) out[size_t(r)].push_back(c);
  }
  return out;
}

}  // namespace

std::vector<int> node_job_cpus(const comm::Comm& node) {
  std::set<int> all;
  for (const auto& m : node_masks(node)) all.insert(m.begin(), m.end());
  return {all.begin(), all.end()};
}

bool pin_if_oversubscribed(const comm::Comm& world, int threads) {
  const char* env = std::getenv("MODELONE_PIN");
  const bool off = env && std::string(env) == "off";
  const comm::Comm node = world.split_shared();
  // Pinned only where the node's ranks all hold the same mask (the launcher bound none of them).
  const std::vector<std::vector<int>> masks = node_masks(node);
  const std::vector<int>& pool = masks[size_t(node.rank())];
  const bool same = std::all_of(masks.begin(), masks.end(), [&](const std::vector<int>& m) { return m == pool; });
  const std::vector<int> mine =
      off || !same ? std::vector<int>{} : round_robin_cpus(pool, node.rank(), node.size(), threads);
  if (!mine.empty()) bind_process(mine);
  return world.allreduce(mine.empty() ? 0 : 1, comm::Op::Max) == 1;
}

}  // namespace modelone
