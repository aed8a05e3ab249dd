// Where each rank runs: its host, the cpus the launcher bound it to, the NUMA domains those cpus
// belong to, and its compute threads. run prints it in its first lines, and warns where the
// layout wastes the node: more threads than bound cpus (they take turns), more threads on a host
// than its ranks' cpus, or one rank's cpus spanning NUMA domains (half its weights are read from
// the far memory). The layout that keeps every core busy on a multi-socket node is one rank per
// NUMA domain with its cores as threads: mpirun --map-by numa --bind-to numa (README, "Under MPI").
#pragma once
#include <string>
#include <vector>

#include "comm/comm.h"

namespace modelone {

// "0-3,8,10-11" for the sorted cpu ids; "" for none.
std::string cpu_list_text(const std::vector<int>& cpus);
// The inverse, as sysfs writes it ("0-3,8"); throws Error on a malformed list.
std::vector<int> parse_cpu_list(const std::string& text);

struct RankPlace {
  std::string host;
  std::vector<int> cpus;  // bound cpus, sorted
  std::vector<int> numa;  // NUMA domains holding them (empty where sysfs says nothing)
  int threads = 1;
};

// This process's place. node_root: where the NUMA nodes are listed (tests give a fake tree).
RankPlace this_place(int threads, const std::string& node_root = "/sys/devices/system/node");

// The report's lines (binding first, then any warnings), for places[r] of world rank r.
std::vector<std::string> binding_lines(const std::vector<RankPlace>& places);

// Every rank's place, gathered at rank 0 of world; the lines there, nothing elsewhere.
std::vector<std::string> gather_binding(const comm::Comm& world, int threads);

}  // namespace modelone
