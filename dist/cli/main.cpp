// modelone: run DeepSeek-V4 models across MPI ranks. See README.md for the commands.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "dist/cli/bench_command.h"
#include "comm/comm.h"
#include "dist/cli/commands.h"
#include "dist/build_info.h"
#include "dist/grid.h"
#include "dist/malloc_policy.h"
#include "model/base/check.h"

using namespace modelone;


int main(int argc, char** argv) {
  reexec_with_malloc_tunables(argv);  // before MPI and threads: the allocator reads it at start
  // --watchdog's thread calls MPI, and the thread level is fixed before the flags are parsed.
  bool watchdog = false;
  for (int i = 1; i < argc; ++i) watchdog |= std::string(argv[i]).rfind("--watchdog", 0) == 0;
  comm::Runtime runtime(&argc, &argv, watchdog);
  const comm::Comm world = comm::Comm::world();
  CLI::App app{"modelone: DeepSeek-V4 inference across MPI ranks"};
  app.require_subcommand(1);
  RunOptions run;
  InspectOptions inspect;
  add_run_command(&app, &run);
  add_inspect_command(&app, &inspect);
  PerplexityOptions perplexity;
  add_perplexity_command(&app, &perplexity);
  ServeOptions serve;
  add_serve_command(&app, &serve);
  PlanExpertsOptions plan_experts;
  add_plan_experts_command(&app, &plan_experts);
  PlanOptions plan;
  add_plan_command(&app, &plan);
  bench::BenchOptions bench_opts;
  bench::add_bench_command(&app, &bench_opts);

  app.set_version_flag("--version", "modelone " + executable_hash());
  bool help = false, version = false;
  int code = 0;
  try {
    // Before any other collective: ranks launched with different commands (an MPMD launch, a
    // wrapper that sets a flag on one node) would otherwise call different collectives and hang.
    std::vector<std::pair<std::string, std::string>> args;
    for (int i = 1; i < argc; ++i) {
      const bool value = i > 1 && argv[i - 1][0] == '-' && argv[i][0] != '-';
      args.emplace_back("argument " + std::to_string(i) +
                            (value ? std::string(" (the value of ") + argv[i - 1] + ")" : ""),
                        argv[i]);
    }
    // Ranks running different executables (a hostfile whose nodes hold two builds) would not
    // be running the same program, whatever their flags say.
    comm::agree_fields(world, "the modelone executable", {{"its build ID", executable_hash()}});
    comm::agree_fields(world, "the command line", args);
    // Every rank parses the same argv, so a bad flag fails everywhere with the same message.
    comm::agree(world, [&] {
      try {
        app.parse(argc, argv);
      } catch (const CLI::CallForHelp&) {
        help = true;
      } catch (const CLI::CallForAllHelp&) {
        help = true;
      } catch (const CLI::CallForVersion&) {
        version = true;
      } catch (const CLI::ParseError& e) {
        throw Error(e.what());
      }
      env_threads();  // the environment's thread count meets the same cap as the flags'
    });
    if (help || version) {
      if (world.rank() == 0) std::puts(help ? app.help().c_str() : app.version().c_str());
      return 0;
    }
    if (app.got_subcommand("run")) code = run_command(run);
    else if (app.got_subcommand("inspect")) code = inspect_command(inspect);
    else if (app.got_subcommand("perplexity")) code = perplexity_command(perplexity);
    else if (app.got_subcommand("serve")) code = serve_command(serve);
    else if (app.got_subcommand("plan-experts")) code = plan_experts_command(plan_experts);
    else if (app.got_subcommand("plan")) code = plan_command(plan);
    else code = bench::bench_command(&app, bench_opts);
  } catch (const comm::AgreedError& e) {
    if (world.rank() == 0) {
      if (world.size() > 1 && e.failed_rank != 0)
        std::fprintf(stderr, "modelone: error: rank %d: %s\n", e.failed_rank, e.what());
      else
        std::fprintf(stderr, "modelone: error: %s\n", e.what());
    }
    return 2;
  } catch (const std::exception& e) {
    // Seen by this rank alone, possibly mid-collective: stop everyone.
    comm::abort_all(e.what(), 3);
  }
  return code;
}
