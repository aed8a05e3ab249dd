// The command against issue 11's faults: ranks launched with different commands, shapes past old
// fixed-size arrays, --logits-out on any kind of path and interrupted runs, and repeatability.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "model/io/npy.h"
#include "tests/cli_support.h"

namespace modelone::test {
namespace {

namespace fs = std::filesystem;

// Ranks launched with different commands (MPMD, or a wrapper that sets a flag on one node) stop
// together with one line naming the first difference and the ranks, instead of hanging in
// mismatched collectives (they did, or crashed, for each of these before).
TEST(Cli, RanksThatDisagreeStopTogether) {
  const std::string base = "run --model tiny --ids 1,2,3 --generate 2 --quiet";
  struct Case { std::string a, b, pattern; };
  const Case cases[] = {
      {base + " --ep 1", base + " --ep 3", "argument 10 \\(the value of --ep\\): '1' on rank 0; '3' on ranks 1, 2"},
      {base, "bench gemm --tokens 1", "argument 1: 'run' on rank 0; 'bench' on ranks 1, 2"},
      {"run --model tiny --ids 1,2,3 --generate 4 --quiet", base, "argument 7 \\(the value of --generate\\): '4' on rank 0; '2' on ranks 1, 2"},
      {base + " --prefill-chunk 1", base + " --prefill-chunk 2", "the value of --prefill-chunk"},
      {base + " --dispatch bf16", base + " --dispatch fp8", "the value of --dispatch"},
      {base + " --set num_hidden_layers=2", base + " --set num_hidden_layers=3", "the value of --set"},
      {"run --model tiny --random-prompt 8 --seed 1 --quiet", "run --model tiny --random-prompt 8 --seed 2 --quiet", "the value of --seed"},
      {base + " --ep-transport mpi", base + " --ep-transport shm", "the value of --ep-transport"},
      {base + " --overlap", base, "argument 9: '--overlap' on rank 0; nothing on ranks 1, 2"},
      {"run --model tiny-engram --ids 1,2,3 --generate 2 --quiet", base, "the value of --model\\): 'tiny-engram' on rank 0; 'tiny' on ranks 1, 2"},
  };
  auto expect_stop = [](const std::vector<Part>& parts, const std::string& pattern) {
    const auto t0 = std::chrono::steady_clock::now();
    const Result r = run_mpmd(parts);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_LT(secs, 10.0);
    const auto lines = error_lines(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_TRUE(std::regex_search(lines[0], std::regex(pattern))) << lines[0];
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.a + "  |  " + c.b);
    expect_stop({{1, c.a, ""}, {2, c.b, ""}}, "ranks disagree on the command line, .*" + c.pattern);
  }
  // The same command line resolving to another compute path on one node (where this CPU has
  // bf16 for the other to differ from).
  const Result probe = run(base + " --json");
  ASSERT_EQ(probe.code, 0) << probe.err;
  if (nlohmann::json::parse(probe.out)["compute"] == "bf16")
    expect_stop({{1, base, "-x MODELONE_CPU_FEATURES=none"}, {1, base, ""}},
                "ranks disagree on the resolved run, compute: 'fp32' on rank 0; 'bf16' on rank 1");
}

// Shapes past the old fixed-size arrays (top-k over 64, hc_mult over 64) run, at 1 and 3 ranks.
TEST(Cli, LargeTopKAndHcMultRun) {
  for (int np : {0, 3}) {
    const Result a = run("run --model tiny --random-prompt 12 --generate 2 --quiet --json "
                         "--set n_routed_experts=96 --set num_experts_per_tok=80", np);
    EXPECT_EQ(a.code, 0) << a.err;
    const Result b = run("run --model tiny --random-prompt 12 --generate 2 --quiet --json --set hc_mult=70", np);
    EXPECT_EQ(b.code, 0) << b.err;
  }
}

// --logits-out never destroys what it replaces: a directory is refused before any work, a device
// is written in place (never renamed over), a pipe streams, a failed or interrupted run leaves no
// temporary file and the old file as it was.
TEST(Cli, LogitsOutPathSafety) {
  const fs::path d = tmpdir() / "outpaths";
  fs::remove_all(d);
  fs::create_directories(d / "adir");
  auto leftovers = [&] {
    std::vector<std::string> extra;
    for (auto& e : fs::directory_iterator(d))
      if (e.path().filename().string().find(".tmp.") != std::string::npos) extra.push_back(e.path());
    return extra;
  };
  const std::string run_args = "run --model tiny --random-prompt 40 --seed 5 --quiet --compute fp32 --logits-out ";
  // A directory: refused at once, on every rank.
  for (int np : {0, 3}) expect_error(run_args + (d / "adir").string(), "--logits-out: '.*adir' is a directory", np);
  EXPECT_TRUE(fs::is_directory(d / "adir"));
  // A regular file: replaced on success; kept as it was when the run fails.
  const fs::path reg = d / "l.npy";
  ASSERT_EQ(run(run_args + reg.string()).code, 0);
  std::vector<int64_t> shape;
  const auto want = read_npy_f32(reg.string(), &shape);
  const auto want_bytes = fs::file_size(reg);
  std::ofstream(reg) << "old";
  expect_error("run --model tiny --ids 1,99999 --quiet --logits-out " + reg.string(), "token id 99999");
  {
    std::ifstream f(reg);
    std::string content;
    f >> content;
    EXPECT_EQ(content, "old");
  }
  // Device nodes (made here, as root): /dev/null's twin stays a device; /dev/full's fails cleanly.
  const fs::path null_dev = d / "null", full_dev = d / "full";
  if (::mknod(null_dev.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0 &&
      ::mknod(full_dev.c_str(), S_IFCHR | 0666, makedev(1, 7)) == 0) {
    EXPECT_EQ(run(run_args + null_dev.string()).code, 0);
    EXPECT_TRUE(fs::is_character_file(null_dev));
    for (int np : {0, 2})
      expect_error("run --model tiny --random-prompt 3000 --quiet --logits-out " + full_dev.string(),
                   "--logits-out: failed writing '.*full' \\(No space left on device\\)", np);
    EXPECT_TRUE(fs::is_character_file(full_dev));
  }
  // A pipe: written in place, read by another process.
  const fs::path fifo = d / "fifo", copy = d / "copy.npy";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ASSERT_EQ(std::system(("cat " + fifo.string() + " > " + copy.string() + " &").c_str()), 0);
  ASSERT_EQ(run(run_args + fifo.string()).code, 0);
  for (int i = 0; i < 50 && fs::file_size(copy) < want_bytes; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_EQ(read_npy_f32(copy.string(), &shape), want);
  // Interrupted (SIGINT, SIGKILL, and SIGTERM through mpirun, which sends SIGKILL right after):
  // no temporary file, no half-written target.
  const fs::path big = d / "big.npy";
  for (const char* sig : {"INT", "KILL"})
    std::system(("timeout -s " + std::string(sig) + " 1.5 " + std::string(MODELONE_BIN) +
                 " run --model tiny --random-prompt 60000 --threads 1 --quiet --logits-out " +
                 big.string() + " >/dev/null 2>&1").c_str());
  std::system(("timeout -s TERM 1.5 " + std::string(MODELONE_MPIEXEC) + " -n 2 --oversubscribe " +
               std::string(MODELONE_BIN) + " run --model tiny --random-prompt 60000 --threads 1 --quiet "
               "--logits-out " + big.string() + " >/dev/null 2>&1").c_str());
  // The ranks get mpirun's SIGTERM a moment after it does: give them up to 10 s to be gone.
  for (int i = 0; i < 100 && !leftovers().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(fs::exists(big));
  EXPECT_EQ(leftovers(), std::vector<std::string>{});
}

// The same command twice gives bit-identical logits, for one layout and thread count: at 1 and 2
// ranks, with 2 threads where the rank has them, on both compute paths.
TEST(Cli, RepeatedRunsAreBitIdentical) {
  auto bytes = [](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  for (const char* compute : {"fp32", "auto"})
    for (int np : {0, 2}) {
      SCOPED_TRACE(std::string(compute) + " np " + std::to_string(np));
      std::string first;
      for (int rep = 0; rep < 2; ++rep) {
        const fs::path out = tmpdir() / ("det" + std::to_string(rep) + ".npy");
        const Result r = run(std::string("run --model tiny --random-prompt 200 --seed 9 --generate 4 --quiet "
                                         "--json --threads 2 --compute ") + compute + " --logits-out " + out.string(), np);
        ASSERT_EQ(r.code, 0) << r.err;
        const std::string got = bytes(out) + nlohmann::json::parse(r.out)["generated"].dump();
        if (rep == 0) first = got;
        else EXPECT_TRUE(first == got) << "the second run differs";
      }
    }
}

// A prompt on standard input (--ids-file -): under mpiexec only rank 0 has it; rank 0 reads it
// and the others get it from there, so 3 ranks generate what --ids gives.
TEST(Cli, PromptOnStandardInputAtThreeRanks) {
  const std::string args = " --model tiny --generate 3 --quiet --json --compute fp32";
  const Result want = run("run --ids 5,6,7" + args, 3);
  ASSERT_EQ(want.code, 0) << want.err;
  const Result got = shell("printf '5 6\\n7\\n' | timeout 120 " + std::string(MODELONE_MPIEXEC) +
                           " -n 3 --oversubscribe " + MODELONE_BIN + " run --ids-file -" + args);
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_EQ(nlohmann::json::parse(got.out)["generated"], nlohmann::json::parse(want.out)["generated"]);
}

}  // namespace
}  // namespace modelone::test
