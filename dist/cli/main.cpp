// modelone: run DeepSeek-V4 models across MPI ranks. See README.md for the commands.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstring>
#include <elf.h>
#include <link.h>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "dist/cli/bench_command.h"
#include "comm/comm.h"
#include "dist/cli/commands.h"
#include "dist/grid.h"
#include "model/base/check.h"

using namespace modelone;

namespace {
// The GNU build ID the linker wrote into this executable (a hash of its linked contents): reading
// it costs nothing, where hashing the file took 0.8 s for the 265 MB sanitizer build. Empty when
// the linker wrote none.
std::string build_id() {
  std::string id;
  dl_iterate_phdr([](dl_phdr_info* info, size_t, void* out) -> int {
    // The first object listed is the executable itself.
    for (int i = 0; i < info->dlpi_phnum; ++i) {
      const ElfW(Phdr)& ph = info->dlpi_phdr[i];
      if (ph.p_type != PT_NOTE) continue;
      const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
      const char* end = p + ph.p_memsz;
      while (p + sizeof(ElfW(Nhdr)) <= end) {
        const auto* n = reinterpret_cast<const ElfW(Nhdr)*>(p);
        const char* name = p + sizeof(ElfW(Nhdr));
        const char* desc = name + ((n->n_namesz + 3) & ~3u);
        if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
          for (uint32_t k = 0; k < n->n_descsz; ++k) {
            char hex[3];
            std::snprintf(hex, sizeof hex, "%02x", unsigned(uint8_t(desc[k])));
            static_cast<std::string*>(out)->append(hex);
          }
          return 1;
        }
        p = desc + ((n->n_descsz + 3) & ~3u);
      }
    }
    return 1;
  }, &id);
  return id;
}

// The build ID, else FNV-1a over this process's executable file.
std::string executable_hash() {
  if (std::string id = build_id(); !id.empty()) return "build-id " + id;
  std::ifstream f("/proc/self/exe", std::ios::binary);
  if (!f) return "unknown";
  uint64_t h = 1469598103934665603ull;
  std::vector<char> buf(1 << 16);
  while (f.read(buf.data(), std::streamsize(buf.size())) || f.gcount() > 0) {
    for (std::streamsize i = 0; i < f.gcount(); ++i) h = (h ^ uint8_t(buf[size_t(i)])) * 1099511628211ull;
    if (!f) break;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
  return hex;
}
}  // namespace

int main(int argc, char** argv) {
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
  PlanOptions plan;
  add_plan_command(&app, &plan);
  bench::BenchOptions bench_opts;
  bench::add_bench_command(&app, &bench_opts);

  bool help = false;
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
      } catch (const CLI::ParseError& e) {
        throw Error(e.what());
      }
      env_threads();  // the environment's thread count meets the same cap as the flags'
    });
    if (help) {
      if (world.rank() == 0) std::fputs(app.help().c_str(), stdout);
      return 0;
    }
    if (app.got_subcommand("run")) code = run_command(run);
    else if (app.got_subcommand("inspect")) code = inspect_command(inspect);
    else if (app.got_subcommand("perplexity")) code = perplexity_command(perplexity);
    else if (app.got_subcommand("serve")) code = serve_command(serve);
    else if (app.got_subcommand("plan-experts")) code = plan_command(plan);
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
