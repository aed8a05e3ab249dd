// The rank grid: world W = dp x cp. A cp group shares one sequence (context parallel), dp groups
// serve different sequences, and MoE runs over ep groups of consecutive ranks (default: all).
#pragma once
#include "comm/comm.h"

namespace modelone {

struct RankGrid {
  comm::Comm world;
  int W = 1, dp = 1, cp = 1, ep = 1;
  int dp_index = 0;   // which dp group this rank is in
  comm::Comm cp_comm; // ranks of this dp group
  comm::Comm ep_comm; // ranks of this ep group
  int local_size = 1; // ranks on this node

  // cp, ep: 0 means the default (the whole world). Throws Error naming the flag when they do
  // not fit the world or each other.
  static RankGrid make(int cp, int ep);
  // The same over the ranks of `base` instead of the whole world (a benchmark's one-rank
  // baseline inside a bigger run).
  static RankGrid make_on(comm::Comm base, int cp, int ep);
  bool is_root() const { return world.rank() == 0; }
  // Compute threads for this rank: `requested`, else OMP_NUM_THREADS, else the node's cores
  // shared among its ranks.
  int threads(int requested) const;
  // Collective over world: sets threads(requested) as this rank's compute threads and places
  // the rank as pin_if_oversubscribed (dist/binding.h) does; returns the count.
  int start_threads(int requested) const;
};

// Both kinds of group are runs of consecutive ranks; one must nest in the other, so a cp group's
// ranks serve its experts together (ep a multiple of cp) or each ep group lies inside one cp
// group (cp a multiple of ep). Throws Error naming both flags otherwise.
void check_layout(int cp, int ep);

// The most compute threads a rank may run, whatever sets the count (--threads, OMP_NUM_THREADS).
int max_threads_per_rank();
// OMP_NUM_THREADS's first level, checked against that cap; 0 when unset.
int env_threads();

}  // namespace modelone
