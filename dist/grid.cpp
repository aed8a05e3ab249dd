#include "dist/grid.h"

#include <algorithm>
#include <cstdlib>
#include <sched.h>

#include <thread>

#include "dist/binding.h"
#include "model/base/check.h"
#include "model/kernels/linear.h"

namespace modelone {

void check_layout(int cp, int ep) {
  MO_REQUIRE(ep % cp == 0 || cp % ep == 0, "--ep ", ep, " cannot be laid over --cp ", cp,
             ": one must be a multiple of the other");
}

RankGrid RankGrid::make(int cp, int ep) { return make_on(comm::Comm::world(), cp, ep); }

RankGrid RankGrid::make_on(comm::Comm base, int cp, int ep) {
  RankGrid g;
  g.world = std::move(base);
  g.W = g.world.size();
  // Defaults: one sequence over the whole world (cp = W) and experts spread over it (ep = W).
  if (cp == 0) cp = g.W;
  if (ep == 0) ep = g.W;
  MO_REQUIRE(cp >= 1 && g.W % cp == 0, "--cp ", cp, " does not divide the world size ", g.W);
  MO_REQUIRE(ep >= 1 && g.W % ep == 0, "--ep ", ep, " does not divide the world size ", g.W);
  // Both kinds of group are runs of consecutive ranks; one must nest in the other, so a cp
  // group's ranks serve its experts together (ep a multiple of cp) or each ep group lies
  // inside one cp group (cp a multiple of ep).
  check_layout(cp, ep);
  g.cp = cp;
  g.dp = g.W / cp;
  g.ep = ep;
  const int r = g.world.rank();
  g.dp_index = r / cp;
  g.cp_comm = g.world.split(g.dp_index, r);
  g.ep_comm = g.world.split(r / ep, r);
  g.local_size = g.world.split_shared().size();
  return g;
}

int max_threads_per_rank() {
  // More threads than this only take turns on the cores (and a huge count crashes the OpenMP
  // runtime while it makes them).
  return std::max(256, 4 * int(std::thread::hardware_concurrency()));
}

int env_threads() {
  // The same cap whatever sets the count. OMP_NUM_THREADS may be a list ("8,2": the first level).
  const char* env = std::getenv("OMP_NUM_THREADS");
  if (!env || !*env) return 0;
  char* end = nullptr;
  const long n = std::strtol(env, &end, 10);
  MO_REQUIRE(end != env && (*end == '\0' || *end == ',') && n > 0, "OMP_NUM_THREADS='",
             printable(env), "' is not a positive thread count");
  const int cap = max_threads_per_rank();
  MO_REQUIRE(n <= cap, "OMP_NUM_THREADS=", n, ": at most ", cap, " threads per rank");
  return int(n);
}

int RankGrid::threads(int requested) const {
  const int cap = max_threads_per_rank();
  MO_REQUIRE(requested <= cap, "--threads ", requested, ": at most ", cap, " threads per rank");
  if (requested > 0) return requested;
  if (const int env = env_threads(); env > 0) return env;
  const int cores = int(std::thread::hardware_concurrency());
  const int share = std::max(1, cores / std::max(1, local_size));
  // A launcher that binds the rank (mpirun binds to one core by default for few ranks) decides:
  // more threads than bound cores would only take turns on them.
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, std::min(share, CPU_COUNT(&set)));
  return share;
}

int RankGrid::start_threads(int requested) const {
  const int t = threads(requested);
  set_compute_threads(t);
  pin_if_oversubscribed(world, t);
  return t;
}

}  // namespace modelone
