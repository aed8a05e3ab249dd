// The server's step loop, on every rank. Each step rank 0 takes what came in over HTTP (new
// requests, each given to a dp group, and cancellations) and broadcasts it; every rank applies
// it to its batch scheduler and runs one step (dist/batch_scheduler.h); the samples' new tokens
// and text are gathered to rank 0, which hands them to the waiting handlers. No rank but 0
// touches the network. SIGTERM (on rank 0) stops taking requests; the running ones finish
// within the grace period (the rest are ended with an error), then every rank returns.
#pragma once
#include <atomic>

#include "dist/batch_scheduler.h"
#include "dist/grid.h"
#include "dist/serve/api_request.h"
#include "dist/serve/serve_hub.h"

namespace modelone {

struct ServeLoopOptions {
  SchedulerOptions sched;
  double grace_s = 30;    // after SIGTERM, how long running requests may take
  double idle_wait_s = 0.1;  // rank 0's longest wait for work between idle steps
};

// hub: rank 0's (null elsewhere). stop: set by SIGTERM on rank 0.
void serve_loop(Engine& engine, const RankGrid& grid, const ApiContext& ctx,
                const ServeLoopOptions& opt, ServeHub* hub, const std::atomic<bool>& stop);

}  // namespace modelone
