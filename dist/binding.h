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

// Ranks a launcher left unbound on a node whose ranks' threads outnumber its cpus (mpirun
// --oversubscribe binds nothing) are pinned round-robin where the threads split evenly. Left to it, the scheduler balances
// runnable threads by count, and ranks waiting in MPI (polling: always runnable) can pair up on
// one core while two computing ranks share the other. 4 ranks, cp 2, ep 4 on 2 cores, medians of
// interleaved runs: tiny's 4096-token prefill 0.24 s unpinned, 0.18 pinned (cp 2 on 2 ranks:
// 0.15; of 8); the 4-layer V4-Flash cut's 2048-token one 12.0 s and 11.3 (of 6).
// The cpus node-local rank `local` of `local_size` ranks sharing `pool` takes: `threads` of
// them from (local * threads) mod |pool|, wrapping; empty where pinning gains nothing (no more
// threads than cpus, or a rank with threads for the whole pool) and where the threads do not
// split evenly over the cpus: 3 ranks on 2 cores pinned leave one core a third of the experts'
// work while the other does two thirds (the V4-Flash cut's 2048-token prefill at 3 ranks, ep 3:
// 14.33 and 13.42 s pinned against 12.88 and 13.11 left to the scheduler, which moves them).
std::vector<int> round_robin_cpus(const std::vector<int>& pool, int local, int local_size, int threads);

// This process's cpus (its affinity mask), sorted.
std::vector<int> bound_cpus();
// Collective over node (the ranks of one host): the union of its ranks' bound cpus, the cpus the
// launcher gave this job there. mpirun binds each of one or two ranks to one core by default.
std::vector<int> node_job_cpus(const comm::Comm& node);
// Binds every thread of this process (the running ones, and by inheritance those it starts
// later) to cpus.
void bind_process(const std::vector<int>& cpus);

// Collective over world: pins this process's threads (running ones and those it starts later)
// to round_robin_cpus where every rank of its node has the same cpu set (the launcher bound none
// of them). MODELONE_PIN=off leaves placement to the OS. True on every rank when any rank of the
// world was pinned.
bool pin_if_oversubscribed(const comm::Comm& world, int threads);

}  // namespace modelone
