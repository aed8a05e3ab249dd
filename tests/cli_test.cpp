// The modelone command as users run it: results on stdout (text, --json, --logits-out), and bad
// input answered by one "modelone: error: ..." line and a non-zero exit on every rank, in time.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "model/io/npy.h"
#include "tests/cli_support.h"
#include "tests/support.h"

namespace modelone::test {
namespace {

namespace fs = std::filesystem;

TEST(Cli, RunTextAndJson) {
  Result r = run("run --model tiny --random-prompt 24 --seed 3 --generate 5 --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("generated: "), std::string::npos) << r.out;
  r = run("run --model tiny --random-prompt 24 --seed 3 --generate 5 --json --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["generated"].size(), 5u);
  EXPECT_EQ(j["prompt_tokens"], 24);
  for (auto k : {"prefill_seconds", "decode_seconds", "decode_tokens_per_second", "ttft_seconds"})
    EXPECT_TRUE(j.contains(k)) << k;
}

// The allocator as dist/malloc_policy.h sets it: huge pages asked for through a re-exec, the
// user's own GLIBC_TUNABLES kept, MODELONE_MALLOC=system leaving glibc as it is.
TEST(Cli, RunsWithTheAllocatorSet) {
  const auto malloc_of = [](const std::string& env, int np) {
    const std::string args = " run --model tiny --random-prompt 8 --generate 2 --json --quiet";
    Result r = np > 0 ? shell("timeout 120 env " + env + " " + MODELONE_MPIEXEC + " -n " + std::to_string(np) +
                              " --oversubscribe " + MODELONE_BIN + args)
                      : shell("timeout 120 env " + env + " " + MODELONE_BIN + args);
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? nlohmann::json::parse(r.out)["malloc"].get<std::string>() : std::string();
  };
  // A sanitizer's allocator refuses glibc's mallopt: nothing is kept there.
  const std::string kept = std::getenv("MODELONE_SANITIZED") ? "" : ", freed buffers kept";
  EXPECT_EQ(malloc_of("-u GLIBC_TUNABLES", 0), "GLIBC_TUNABLES=glibc.malloc.hugetlb=1" + kept);
  EXPECT_EQ(malloc_of("-u GLIBC_TUNABLES", 2), "GLIBC_TUNABLES=glibc.malloc.hugetlb=1" + kept);
  EXPECT_EQ(malloc_of("GLIBC_TUNABLES=glibc.malloc.arena_max=2", 0),
            "GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1" + kept);
  EXPECT_EQ(malloc_of("GLIBC_TUNABLES=glibc.malloc.hugetlb=0", 0), "GLIBC_TUNABLES=glibc.malloc.hugetlb=0" + kept);
  EXPECT_EQ(malloc_of("-u GLIBC_TUNABLES MODELONE_MALLOC=system", 0), "glibc defaults");
}

TEST(Cli, InspectPublishedSizes) {
  Result r = run("inspect --model v4-flash --json --context 1048576 --ep 64");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["params_total"].get<double>() / 1e9, 284, 3);          // 284B total
  EXPECT_NEAR(j["params_active_no_embedding"].get<double>() / 1e9, 13, 1);  // 13B active
  EXPECT_GT(j["rank_kv_cache_bytes"].get<int64_t>(), 0);
  r = run("inspect --model v4-pro --json");
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["params_total"].get<double>() / 1e12, 1.6, 0.05);     // 1.6T total
  EXPECT_NEAR(j["params_active"].get<double>() / 1e9, 49, 1.5);        // 49B active
  r = run("inspect --model " + data_dir("hf_v4_tiny") + " --tensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("model.layers.{L}.attn.indexer.wq_b.weight"), std::string::npos);
  EXPECT_NE(r.out.find("total 1.39M"), std::string::npos) << r.out;  // the fixture's 1390413
}

TEST(Cli, LogitsOutMatchesTheEngineAndTransformers) {
  const std::string dir = data_dir("hf_v4_tiny");
  Reference ref = load_reference(dir);
  const auto ids = ref.ids("input_ids");
  std::string csv;
  for (auto i : ids) {  // appended in two steps: "literal" + std::string trips gcc 12's -Wrestrict
    if (!csv.empty()) csv += ',';
    csv += std::to_string(i);
  }
  const fs::path npy = tmpdir() / "logits.npy";
  // --compute fp32: the exact path is the one held to transformers' fp32 outputs.
  Result r = run("run --model " + dir + " --ids " + csv + " --logits-out " + npy.string() +
                 " --generate 3 --json --quiet --compute fp32");
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<int64_t> shape;
  const auto got = read_npy_f32(npy.string(), &shape);
  ASSERT_EQ(shape, (std::vector<int64_t>{int64_t(ids.size()), 256}));
  const auto want = ref.f32("logits");
  EXPECT_LE(max_diff(got.data(), want.data(), want.size()).max_abs, 1e-3f);
  // The same through mpirun with experts over 2 ranks, ids from a file.
  const fs::path idf = tmpdir() / "ids.txt";
  std::ofstream(idf) << csv << "\n";
  const fs::path npy2 = tmpdir() / "logits2.npy";
  r = run("run --model " + dir + " --ids-file " + idf.string() + " --logits-out " + npy2.string() +
          " --quiet --compute fp32", 2);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto got2 = read_npy_f32(npy2.string(), &shape);
  EXPECT_LE(max_diff(got2.data(), want.data(), want.size()).max_abs, 1e-3f);
}

TEST(Cli, GenerationMatchesTransformers) {
  const std::string dir = data_dir("hf_v4_tiny");
  Reference ref = load_reference(dir);
  const auto gen = ref.ids("generated");
  std::string csv;
  for (size_t i = 0; i < 64; ++i) {
    if (!csv.empty()) csv += ',';
    csv += std::to_string(gen[i]);
  }
  for (int np : {0, 3}) {
    Result r = run("run --model " + dir + " --ids " + csv + " --generate 16 --json --quiet "
                   "--compute fp32", np);
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["generated"].get<std::vector<int32_t>>(),
              std::vector<int32_t>(gen.begin() + 64, gen.end()))
        << "np " << np;
  }
}

// --compute: auto resolves by the CPU's features (masked here to force the fallback), bf16 on a
// CPU without it is refused on every rank, and the bf16 path over 2 and 3 ranks (cp + ep) gives
// the one-rank bf16 logits within bf16 noise and the same greedy tokens. index_topk covers every
// entry here: on the bf16 path a near-tie in the indexer's top-k can flip between layouts (the
// sums round in another order) and move the logits by far more than rounding.
TEST(Cli, ComputeModes) {
  const std::string dir = data_dir("hf_v4_tiny");
  const std::string args = "run --model " + dir + " --random-prompt 300 --seed 2 --generate 12 "
                           "--ignore-eos --json --quiet --set index_topk=1024";
  setenv("MODELONE_CPU_FEATURES", "none", 1);
  Result r = run(args + " --compute auto");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["compute"], "fp32");
  for (int np : {0, 2})
    expect_error("run --model tiny --ids 1,2 --compute bf16",
                 "--compute bf16 needs a CPU with AVX512-BF16 or AMX; this one has: none", np);
  unsetenv("MODELONE_CPU_FEATURES");
  expect_error("run --model tiny --ids 1 --compute fp16", "--compute");

  r = run(args + " --compute auto");
  ASSERT_EQ(r.code, 0) << r.err;
  if (nlohmann::json::parse(r.out)["compute"] != "bf16") GTEST_SKIP() << "no bf16 on this CPU";
  auto logits = [&](const std::string& compute, int np) {
    const fs::path npy = tmpdir() / ("compute_" + compute + std::to_string(np) + ".npy");
    const Result q = run(args + " --compute " + compute + " --logits-out " + npy.string(), np);
    EXPECT_EQ(q.code, 0) << q.err;
    std::vector<int64_t> shape;
    return std::make_pair(nlohmann::json::parse(q.out)["generated"], read_npy_f32(npy.string(), &shape));
  };
  const auto f32 = logits("fp32", 0), b1 = logits("bf16", 0);
  const float bf16_vs_fp32 = max_diff(b1.second.data(), f32.second.data(), f32.second.size()).max_abs;
  // Measured on the fixture: 0.24 from rounding to bf16, 0.002-0.003 between rank counts.
  EXPECT_GT(bf16_vs_fp32, 1e-3f) << "the bf16 path must not be the fp32 path";
  // The layouts agree as compiled for users (scripts/setup.sh's build). The sanitizer build rounds
  // the bf16 sums in another order, and one near-tie of this random-weight model flips there
  // (one row of 300 moved by 0.13 at np 2, where fp32 agrees to 1e-6): not what that job checks.
  if (std::getenv("MODELONE_SANITIZED")) GTEST_SKIP() << "bf16 across layouts: release build only";
  for (int np : {2, 3}) {
    const auto b = logits("bf16", np);
    const float d = max_diff(b.second.data(), b1.second.data(), b1.second.size()).max_abs;
    EXPECT_LE(d, 0.02f) << "np " << np;
    EXPECT_LE(d, 0.1f * bf16_vs_fp32) << "np " << np;
    EXPECT_EQ(b.first, b1.first) << "np " << np;
  }
}

TEST(Cli, BadInput) {
  expect_error("run --model nope --ids 1", "--model: 'nope' is neither a preset \\(.*tiny");
  expect_error("run --model tiny --ids ,", "no prompt");
  expect_error("run --ids 1", "--model is required");
  expect_error("run --model tiny --ids 1 --set num_experts_per_tok=20",
               "num_experts_per_tok \\(20\\) exceeds n_routed_experts \\(8\\)");
  expect_error("run --model tiny --ids 1 --cp 2", "--cp 2 does not divide the world size 1");
  // The values issue 11 found crashing or running silently: tests/fault_battery_test.cpp.
  // (Not under AddressSanitizer, whose shadow memory alone needs terabytes of address space.)
  if (!std::getenv("MODELONE_SANITIZED")) {
    const auto t0 = std::chrono::steady_clock::now();
    const fs::path err = tmpdir() / "ulimit_err";
    const int st = std::system(("bash -c 'ulimit -v 4194304; " + std::string(MODELONE_BIN) +
                                " run --model v4-flash --ids 1 --set num_hidden_layers=4' 2>" + err.string()).c_str());
    EXPECT_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 2);
    std::ifstream f(err);
    std::string line;
    std::getline(f, line);
    EXPECT_NE(line.find("but a rank here may use 4.00 GiB (the address-space limit (ulimit -v) 4.0 GiB)"),
              std::string::npos) << line;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  }
  expect_error("run --model tiny --ids 1 --engram-budget abc", "--engram-budget: 'abc' is not a number$");
  expect_error("run --model tiny --ids 1 --prefill-chunk 0", "--prefill-chunk: must be above 0, got 0$");
  expect_error("run --model tiny --ids 1 --logits-out /no/such/dir/l.npy",
               "--logits-out: cannot write '/no/such/dir/l.npy'");
  const fs::path pb = tmpdir() / "bad.pbtxt";
  std::ofstream(pb) << "name: \"x\"\nhidden_sise: 64\n";
  expect_error("run --model " + pb.string() + " --ids 1", "bad.pbtxt:2:.*hidden_sise");
  std::ofstream(tmpdir() / "syntax.pbtxt") << "hidden_size: {\n";
  expect_error("run --model " + (tmpdir() / "syntax.pbtxt").string() + " --ids 1", "syntax.pbtxt:1:");
}

// A copy of the fixture with its second shard cut short or its header garbled.
fs::path damaged_fixture(const std::string& name, bool truncate) {
  const fs::path src = data_dir("hf_v4_tiny"), dst = tmpdir() / name;
  fs::remove_all(dst);
  fs::copy(src, dst);
  const fs::path shard = dst / "model-00002-of-00002.safetensors";
  fs::permissions(shard, fs::perms::owner_write, fs::perm_options::add);
  if (truncate) {
    fs::resize_file(shard, fs::file_size(shard) / 2);
  } else {
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.write("\x01\x02\x03", 3);
  }
  return dst;
}

// Checkpoint corruptions: tests/fault_battery_test.cpp.

TEST(Cli, ExpertStatsPlanAndPlacement) {
  // A skewed workload (one token repeated: hash layers send it to the same experts), its stats,
  // a plan from them, and a run with the plan that gives the same tokens.
  const fs::path stats = tmpdir() / "stats.json", plan = tmpdir() / "plan.json";
  // fp32: the runs are compared token for token (bf16 across layouts: Cli.ComputeModes).
  const std::string prompt = "--ids 5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,7,7,7,7,9 --generate 6 --json "
                             "--quiet --compute fp32";
  Result a = run("run --model tiny " + prompt + " --expert-stats " + stats.string(), 2);
  ASSERT_EQ(a.code, 0) << a.err;
  const auto js = nlohmann::json::parse(std::ifstream(stats));
  ASSERT_EQ(js["layers"].size(), 6u);
  int64_t routed = 0;
  for (auto v : js["layers"][0]["tokens_per_expert"]) routed += v.get<int64_t>();
  EXPECT_EQ(routed, (21 + 5) * 2) << "prompt + decode steps, top-2";
  Result p = run("plan-experts --stats " + stats.string() + " --out " + plan.string());
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_NE(p.out.find("before"), std::string::npos) << p.out;
  Result b = run("run --model tiny " + prompt + " --expert-placement " + plan.string() +
                 " --overlap --ep-transport mpi", 2);
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(nlohmann::json::parse(b.out)["generated"], nlohmann::json::parse(a.out)["generated"]);
  EXPECT_EQ(nlohmann::json::parse(a.out)["ep_transport"], "shm");
  EXPECT_EQ(nlohmann::json::parse(b.out)["ep_transport"], "mpi");
  // A plan for another ep, or naming a rank that does not exist, stops every rank.
  expect_error("run --model tiny --ids 1 --expert-placement " + plan.string(), "plan is for ep 2", 3);
  const fs::path bad = tmpdir() / "bad_plan.json";
  std::ofstream(bad) << R"({"ep": 2, "layers": [{"layer": 0, "replicas": [[0],[1],[0],[1],[0],[1],[0],[7]]}]})";
  expect_error("run --model tiny --ids 1 --expert-placement " + bad.string(),
               "layer 0: expert 7 is placed on rank 7, outside \\[0, 2\\)", 2);
}

TEST(Cli, OneRankFailingMidRunStopsEveryRank) {
  // Rank 1 fails inside layer 2 while the others wait for it in the expert exchange.
  for (const char* t : {"shm", "mpi"}) {
    setenv("MODELONE_INJECT_FAULT", "1:2", 1);
    const Result r = run(std::string("run --model tiny --random-prompt 64 --generate 4 --ep-transport ") + t, 3);
    unsetenv("MODELONE_INJECT_FAULT");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.code, 124) << "timed out: a rank hung";
    const auto lines = error_lines(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_NE(lines[0].find("modelone: error: rank 1: injected fault in layer 2"), std::string::npos)
        << lines[0];
  }
}

TEST(Cli, ContextParallelRunsMatchOneRank) {
  auto generated = [](const std::string& args, int np) {
    const Result r = run("run --model tiny " + args + " --json --quiet --compute fp32", np);
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json{};
  };
  const std::string prompt = "--random-prompt 333 --seed 4 --generate 8 --ignore-eos";
  const auto one = generated(prompt, 0)["generated"];
  ASSERT_EQ(one.size(), 8u);
  // cp = world (the default), zigzag and contiguous; cp 2 with dp 2; small steps.
  const auto j = generated(prompt, 3);
  EXPECT_EQ(j["generated"], one);
  EXPECT_EQ(j["cp"], 3);
  EXPECT_GT(j["cp_traffic"]["cp.halo"]["bytes_max"].get<int64_t>(), 0) << j.dump();
  EXPECT_GT(j["cp_traffic"]["cp.entries"]["bytes_max"].get<int64_t>(), 0) << j.dump();
  // The attention's timers by layer kind, over the ranks: every rank attends in prefill.
  for (const char* kind : {"sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention"})
    EXPECT_GT(j["over_ranks"][std::string("attention.") + kind]["attend"]["min"].get<double>(), 0) << kind;
  EXPECT_GT(j["over_ranks"]["attention.compressed_sparse_attention"]["indexer"]["max"].get<double>(), 0);
  EXPECT_EQ(generated(prompt + " --cp-layout contiguous", 2)["generated"], one);
  const auto dp = generated(prompt + " --cp 2 --prefill-chunk 40", 4);
  EXPECT_EQ(dp["generated"], one);
  EXPECT_EQ(dp["dp"], 2);
  // A prompt shorter than the cp group: some ranks hold nothing in prefill.
  EXPECT_EQ(generated("--ids 5,6 --generate 6 --ignore-eos", 4)["generated"],
            generated("--ids 5,6 --generate 6 --ignore-eos", 0)["generated"]);
}

TEST(Cli, SampledRunsMatchAcrossRanks) {
  // The draw is keyed by (seed, sequence, position): the same tokens at np 1, 2 and 3.
  auto tokens = [](const std::string& args, int np) {
    const Result r = run("run --model tiny --random-prompt 40 --seed 2 --generate 12 --ignore-eos "
                         "--compute fp32 --json --quiet " + args, np);
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? nlohmann::json::parse(r.out)["generated"] : nlohmann::json{};
  };
  const std::string s = "--temperature 0.9 --top-p 0.95 --top-k 50 --sample-seed 11";
  const auto one = tokens(s, 0);
  ASSERT_EQ(one.size(), 12u);
  EXPECT_EQ(tokens(s, 3), one);
  EXPECT_EQ(tokens(s + " --cp 1", 2), one);  // ep 2 without cp
  EXPECT_NE(tokens("--temperature 0.9 --top-p 0.95 --top-k 50 --sample-seed 12", 0), one);
  EXPECT_NE(tokens("", 0), one);  // greedy
  // Penalties alone keep greedy picking, on penalised logits.
  EXPECT_EQ(tokens("--frequency-penalty 2 --presence-penalty 2", 2),
            tokens("--frequency-penalty 2 --presence-penalty 2", 0));
  // Bad sampling options: one line, every rank (each option's range is in sampling_test).
  expect_error("run --model tiny --random-prompt 4 --temperature -1", "temperature -1 must be 0 "
               "\\(greedy\\) or more", 2);
  expect_error("run --model tiny --random-prompt 4 --logit-bias 5000:1",
               "--logit-bias: token id 5000 is outside the vocabulary");
  expect_error("run --model tiny --random-prompt 4 --logit-bias 5:x", "--logit-bias: 'x' is not a number");
  expect_error("run --model tiny --random-prompt 4 --stop-ids 3,x", "--stop-ids: 'x' is not a token id");
  expect_error("run --model tiny --random-prompt 4 --stop abc", "--stop needs the tokenizer.json", 2);
}

TEST(Cli, RunShowsTheBinding) {
  // Each rank's host, bound cpus and threads, in the first lines (rank 0 prints them).
  const Result r = run("run --model tiny --random-prompt 8 --generate 2", 2);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("modelone: binding: host "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("; rank 1 cpus "), std::string::npos) << r.err;
  EXPECT_LT(r.err.find("binding:"), r.err.find("weights:")) << r.err;
}

// Ranks a launcher left unbound on a node they oversubscribe are pinned round-robin
// (dist/binding.h); MODELONE_PIN=off, the launcher's own binding, or ranks that do not split
// evenly over the cpus leave them be. The node here: cpus 0 and 1 (taskset), ranks of one thread.
TEST(Cli, PinsUnboundRanksOfAnOversubscribedNode) {
  const auto binding = [](const std::string& env, const std::string& bind, int np = 4) {
    const Result r = shell("timeout 120 env " + env + " taskset -c 0,1 " + MODELONE_MPIEXEC + " -n " +
                           std::to_string(np) + " --oversubscribe --bind-to " + bind + " " + MODELONE_BIN +
                           " run --model tiny --random-prompt 8 --generate 2 --threads 1");
    EXPECT_EQ(r.code, 0) << r.err;
    return r.err;
  };
  const std::string pinned = "ranks pinned round-robin";
  std::string err = binding("", "none");
  EXPECT_NE(err.find(pinned), std::string::npos) << err;
  for (const char* place : {"rank 0 cpus 0 ", "rank 1 cpus 1 ", "rank 2 cpus 0 ", "rank 3 cpus 1 "})
    EXPECT_NE(err.find(place), std::string::npos) << place << "\n" << err;
  err = binding("MODELONE_PIN=off", "none");
  EXPECT_EQ(err.find(pinned), std::string::npos) << err;
  EXPECT_NE(err.find("rank 2 cpus 0-1 "), std::string::npos) << err;
  err = binding("", "none", 3);  // 3 ranks on 2 cpus: uneven
  EXPECT_EQ(err.find(pinned), std::string::npos) << err;
  EXPECT_NE(err.find("rank 2 cpus 0-1 "), std::string::npos) << err;
  err = binding("", "core:overload-allowed");  // each rank bound by mpirun: kept
  EXPECT_EQ(err.find(pinned), std::string::npos) << err;
}

TEST(Cli, InspectContextParallelMemory) {
  auto inspect = [](const std::string& args) {
    const Result r = run("inspect --model v4-flash --json --context 1048576 " + args);
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  };
  const auto one = inspect(""), four = inspect("--cp 4 --ep 4 --mem-per-rank 64");
  // Entries and indexer keys split over the cp ranks; the window stays whole on one rank.
  const int64_t e1 = one["rank_entry_bytes"], e4 = four["rank_entry_bytes"];
  EXPECT_NEAR(double(e4), double(e1) / 4, 1.0);
  EXPECT_NEAR(double(four["rank_index_key_bytes"].get<int64_t>()),
              double(one["rank_index_key_bytes"].get<int64_t>()) / 4, 1.0);
  EXPECT_EQ(four["rank_window_bytes"], one["rank_window_bytes"]);
  EXPECT_LT(four["rank_weight_bytes"].get<int64_t>(), one["rank_weight_bytes"].get<int64_t>());
  // V4-Flash's 1M-token context in bf16: 21 CSA layers of 262144 entries (1 KiB + a 4-byte
  // index each) and 20 HCA layers of 8192.
  EXPECT_EQ(e1, 21 * 262144ll * 1028 + 20 * 8192ll * 1028);
  // The fewest ranks that fit the budget, and one fewer does not.
  const int need = four["ranks_needed"];
  ASSERT_GT(need, 1);
  EXPECT_LE(inspect("--cp " + std::to_string(need) + " --ep " + std::to_string(need))["rank_total_bytes"]
                .get<int64_t>(),
            64ll << 30);
  EXPECT_GT(inspect("--cp " + std::to_string(need - 1) + " --ep " + std::to_string(need - 1))["rank_total_bytes"]
                .get<int64_t>(),
            64ll << 30);
}

TEST(Cli, BadInputUnderMpiStopsEveryRank) {
  expect_error("run --model nope --ids 1", "'nope' is neither a preset", 2);
  expect_error("run --model tiny --ids 1 --ep 3", "--ep 3 does not divide the world size 2", 2);
  expect_error("run --model tiny --ids 1 --cp 3", "--cp 3 does not divide the world size 2", 2);
  expect_error("run --model tiny --ids 1 --cp 2 --ep 3",
               "--ep 3 cannot be laid over --cp 2: one must be a multiple of the other", 6);
  expect_error("run --model tiny --ids 1 --cp 0", "--cp: Value 0 not in range 1", 2);
  expect_error("run --model tiny --ids 1 --cp-layout spiral", "--cp-layout: spiral not in", 2);
  expect_error("run --model " + damaged_fixture("cut2", true).string() + " --ids 1", "truncated", 3);
}

}  // namespace
}  // namespace modelone::test

namespace modelone::test {
namespace {

TEST(Cli, EngramRunsMatchOneRank) {
  auto run_json = [](const std::string& args, int np) {
    const Result r = run("run --model tiny-engram " + args + " --json --quiet --compute fp32", np);
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json{};
  };
  const std::string prompt = "--random-prompt 150 --seed 9 --generate 8 --ignore-eos --prefill-chunk 32";
  const auto one = run_json(prompt, 0);
  ASSERT_EQ(one["generated"].size(), 8u);
  const auto three = run_json(prompt, 3);
  EXPECT_EQ(three["generated"], one["generated"]);
  EXPECT_GT(three["engram"]["remote"].get<int64_t>(), 0) << three.dump();
  EXPECT_LE(three["engram"]["unique"].get<int64_t>(), three["engram"]["lookups"].get<int64_t>());
  EXPECT_EQ(run_json(prompt + " --engram-fetch alltoall --engram-prefetch off", 2)["generated"],
            one["generated"]);
  EXPECT_EQ(run_json(prompt + " --cp 2 --engram-ranks 1,3", 4)["generated"], one["generated"]);
  const auto off = run_json(prompt + " --engram off", 0);
  EXPECT_FALSE(off.contains("engram"));
  EXPECT_NE(off["generated"], one["generated"]) << "--engram off must change the model";
}

// --kv-cache fp8 sizes FlashMLA's MODEL1 entries: 584 bytes (vs 1024 in bf16) + the 4-byte index,
// and indexer keys of 128 fp8 values + an fp32 scale.
TEST(Cli, InspectFp8KvCache) {
  const Result r = run("inspect --model v4-flash --json --context 1048576 --kv-cache fp8");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["rank_entry_bytes"].get<int64_t>(), 21 * 262144ll * 588 + 20 * 8192ll * 588);
  EXPECT_EQ(j["rank_index_key_bytes"].get<int64_t>(), 21 * 262144ll * (132 + 4));
}

TEST(Cli, InspectEngramTablesAndBadInput) {
  const Result r = run("inspect --model v41-flash --json --cp 16 --ep 16");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  // V4.1-Flash: 384,006,168 and 384,016,682 rows of 256 fp8 values + 8 scale bytes, split by
  // row range over 16 ranks: the busiest holds the ceiling of each.
  const int64_t per_rank = ((384006168ll + 15) / 16 + (384016682ll + 15) / 16) * 264;
  EXPECT_EQ(j["rank_engram_table_bytes"].get<int64_t>(), per_rank);
  expect_error("inspect --model v41-flash --cp 4 --ep 4",
               "the Engram tables need 47.2083 GiB on the busiest of 4 ranks, more than "
               "--mem-per-rank 24 GiB");
  expect_error("run --model tiny-engram --ids 1 --engram-budget 0.0001",
               "more than its budget of 0.0001 GiB \\(--engram-budget\\)", 2);
  // Only rank 0 holds rows, so only its share is too big: the other rank must stop too.
  expect_error("run --model tiny-engram --ids 1 --engram-ranks 0 --engram-budget 0.0001",
               "on rank 0 \\(1 ranks hold them\\)", 3);
  expect_error("run --model tiny-engram --ids 1 --engram-ranks 0,2",
               "--engram-ranks: rank 2 is outside the world \\[0, 2\\)", 2);
  expect_error("run --model tiny-engram --ids 1 --set engram_layer_ids=1,7",
               "engram_layer_ids: layer 7 is outside \\[0, 6\\)", 3);
  expect_error("run --model tiny-engram --ids 1 --engram-fetch rdma", "--engram-fetch: rdma not in");
}

}  // namespace
}  // namespace modelone::test
