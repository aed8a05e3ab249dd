// `modelone bench ...` on the command line: each benchmark's flags, filling bench/'s options.
#pragma once
#include <CLI/CLI.hpp>

#include "bench/bench_options.h"

namespace modelone::bench {

void add_bench_command(CLI::App* app, BenchOptions* o);
// Runs the selected benchmark (--repetitions times) and prints its report; returns the exit
// code, or -1 when `app` selected none.
int bench_command(CLI::App* app, const BenchOptions& o);

}  // namespace modelone::bench
