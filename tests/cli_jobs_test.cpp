// Jobs over many prompts. `modelone run --batch IN.jsonl --out OUT.jsonl`: every request answered
// once, each as `run` answers it alone (greedy and sampled, at np 1 and 3), bad lines named and
// skipped, and a job killed mid-way finishing on its rerun. `modelone perplexity`: equal to exp
// of the mean negative log-likelihood computed here from `run --logits-out` of each window.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/io/npy.h"
#include "tests/cli_support.h"
#include "tests/support.h"

namespace modelone::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string write(const std::string& name, const std::string& text) {
  const fs::path p = tmpdir() / name;
  std::ofstream(p) << text;
  return p.string();
}

// OUT's answers by id (each id's JSON text); a second answer to one id fails the test, and so
// does a line that is not JSON unless cut_ok (a killed job's last line).
std::map<std::string, json> answers(const std::string& path, bool cut_ok = false) {
  std::ifstream f(path);
  std::map<std::string, json> by_id;
  for (std::string line; std::getline(f, line);) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      EXPECT_TRUE(cut_ok && f.peek() == EOF) << "not an answer: " << line;
      continue;
    }
    EXPECT_TRUE(by_id.emplace(j["id"].dump(), j).second) << "answered twice: " << line;
  }
  return by_id;
}

json run_alone(const std::string& args) {
  const Result r = run("run --model tiny --compute fp32 --json --quiet --ignore-eos " + args);
  EXPECT_EQ(r.code, 0) << r.err;
  return r.code == 0 ? json::parse(r.out)["generated"] : json{};
}

const std::string kJob =
    R"({"id": "a", "ids": [5, 6, 7], "max_tokens": 5, "ignore_eos": true})"
    "\n"
    R"({"id": 2, "ids": [9, 10], "max_tokens": 4, "ignore_eos": true, "temperature": 0.8, "seed": 3, "top_k": 40})"
    "\n\n"
    R"({"id": "c", "ids": [1, 2, 3, 4], "max_tokens": 3, "ignore_eos": true, "n": 2, "temperature": 1.0, "seed": 5})"
    "\n";

TEST(CliBatch, EveryRequestAnsweredAsRunAnswersItAlone) {
  const std::string in = write("job.jsonl", kJob);
  // Each rank its own requests (np 3, cp 1 by default), one rank batching them in small steps,
  // and one cp group splitting each sequence: the tokens do not depend on the batch.
  const std::pair<int, std::string> cases[] = {
      {0, ""}, {3, ""}, {0, " --max-seqs 2 --step-tokens 3"}, {2, " --cp 2 --step-tokens 3"}};
  int k = 0;
  for (const auto& [np, flags] : cases) {
    SCOPED_TRACE("np " + std::to_string(np) + flags);
    const std::string out = (tmpdir() / ("job_out_" + std::to_string(k++) + ".jsonl")).string();
    fs::remove(out);
    const Result r = run("run --model tiny --compute fp32 --batch " + in + " --out " + out + flags, np);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("batch: 3 / 3 requests"), std::string::npos) << r.err;
    auto a = answers(out);
    ASSERT_EQ(a.size(), 3u);
    EXPECT_EQ(a["\"a\""]["tokens"], run_alone("--ids 5,6,7 --generate 5"));
    EXPECT_EQ(a["\"a\""]["finish_reason"], "length");
    EXPECT_EQ(a["\"a\""]["prompt_tokens"], 3);
    EXPECT_TRUE(a["\"a\""]["timings"].contains("decode_seconds"));
    EXPECT_EQ(a["2"]["tokens"], run_alone("--ids 9,10 --generate 4 --temperature 0.8 --sample-seed 3 --top-k 40"));
    const json& c = a["\"c\""];
    ASSERT_EQ(c["choices"].size(), 2u);
    EXPECT_EQ(c["tokens"], c["choices"][0]["tokens"]);
    EXPECT_EQ(c["choices"][0]["tokens"], run_alone("--ids 1,2,3,4 --generate 3 --temperature 1 --sample-seed 5"));
    EXPECT_NE(c["choices"][1]["tokens"], c["choices"][0]["tokens"]);  // another draw per sample
    EXPECT_EQ(c["completion_tokens"], 6);
  }
}

TEST(CliBatch, BadLinesAreNamedAndTheOthersRun) {
  const std::string in = write("bad.jsonl",
                               "{\"id\": \"ok1\", \"ids\": [3], \"max_tokens\": 2}\n"
                               "not json\n"
                               "{\"id\": \"x\", \"ids\": [1], \"bogus\": 1}\n"
                               "{\"id\": \"y\", \"ids\": [1], \"temperature\": -1}\n"
                               "{\"id\": \"z\", \"ids\": [999999]}\n"
                               "{\"id\": \"w\", \"prompt\": \"hi\"}\n"
                               "{\"id\": \"ok1\", \"ids\": [4]}\n"
                               "{\"ids\": [4]}\n"
                               "{\"id\": \"v\", \"ids\": [4], \"top_p\": 0}\n"
                               "{\"id\": \"u\", \"ids\": [4], \"max_tokens\": 100000000}\n"
                               "{\"id\": \"t\", \"ids\": [4], \"logit_bias\": {\"x\": 1}}\n"
                               "{\"id\": \"ok2\", \"ids\": [3, 4], \"max_tokens\": 2}\n");
  const std::string out = (tmpdir() / "bad_out.jsonl").string();
  fs::remove(out);
  const Result r = run("run --model tiny --batch " + in + " --out " + out, 2);
  EXPECT_EQ(r.code, 2) << r.err;
  for (const char* want : {"bad.jsonl line 2: not valid JSON", "line 3: unknown key 'bogus'",
                           "line 4: temperature -1 must be 0", "line 5: token id 999999 is outside",
                           "line 6: prompt needs the model's tokenizer.json",
                           "line 7: id \"ok1\" comes twice", "line 8: id (a string or an integer) is missing",
                           "line 9: top_p 0 is outside", "line 10: the prompt (1 tokens) and max_tokens",
                           "line 11: logit_bias: 'x' is not a token id", "10 line(s) of"})
    EXPECT_NE(r.err.find(want), std::string::npos) << want << "\n" << r.err;
  const auto a = answers(out);
  EXPECT_EQ(a.size(), 2u);
  EXPECT_TRUE(a.count("\"ok1\"") && a.count("\"ok2\""));
  // Flags: --batch needs --out; a prompt flag beside --batch is refused.
  expect_error("run --model tiny --batch " + in, "--batch requires --out");
  expect_error("run --model tiny --batch " + in + " --out " + out + " --ids 3", "excludes");
  expect_error("run --model tiny --batch " + in + " --out " + out + " --logits-out x.npy", "excludes");
  // A cache budget below one sequence: every valid line is named, nothing is run.
  fs::remove(out);
  const Result tight = run("run --model tiny --batch " + in + " --out " + out + " --cache-budget 0.00001", 2);
  EXPECT_EQ(tight.code, 2) << tight.err;
  EXPECT_NE(tight.err.find("bad.jsonl line 1: its caches need"), std::string::npos) << tight.err;
  EXPECT_NE(tight.err.find("more than --cache-budget"), std::string::npos) << tight.err;
  EXPECT_NE(tight.err.find("12 line(s) of"), std::string::npos) << tight.err;
  EXPECT_TRUE(answers(out).empty());
}

TEST(CliBatch, AKilledJobFinishesOnItsRerun) {
  std::string job;
  for (int i = 0; i < 40; ++i)
    job += "{\"id\": " + std::to_string(i) + ", \"ids\": [" + std::to_string(i + 1) +
           ", 7], \"max_tokens\": 48, \"ignore_eos\": true}\n";
  const std::string in = write("long.jsonl", job), out = (tmpdir() / "long_out.jsonl").string();
  fs::remove(out);
  // Four sequences at a time, so answers come out in waves and the kill lands mid-job.
  const std::string cmd = std::string(MODELONE_BIN) + " run --model tiny --quiet --threads 1 "
                          "--max-seqs 4 --batch " + in + " --out " + out;
  // Killed (SIGKILL) once a few answers are out, mid-request.
  const Result killed = shell("(" + cmd + " & p=$!; for i in $(seq 600); do "
                              "[ -f " + out + " ] && [ $(wc -l < " + out + ") -ge 3 ] && break; "
                              "sleep 0.05; done; kill -9 $p; wait $p; echo killed)");
  ASSERT_NE(killed.out.find("killed"), std::string::npos) << killed.err;
  const size_t before = answers(out, true).size();
  ASSERT_GE(before, 3u);
  ASSERT_LT(before, 40u) << "the job finished before the kill";
  // A cut last line (a write interrupted) is dropped and answered again.
  std::ofstream(out, std::ios::app) << "{\"id\": 39, \"tok";
  const Result again = run("run --model tiny --batch " + in + " --out " + out, 2);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find(std::to_string(before) + " answered already"), std::string::npos) << again.err;
  const auto a = answers(out);
  EXPECT_EQ(a.size(), 40u);
  // Not an answer file: refused rather than appended to.
  const std::string foreign = write("foreign.jsonl", "hello\n");
  expect_error("run --model tiny --batch " + in + " --out " + foreign,
               "--out .*foreign.jsonl line 1 is not an answer of a batch job");
}

// The fixture's document: 40 token ids below its vocabulary of 256.
std::vector<int32_t> document() {
  std::vector<int32_t> d;
  for (int32_t i = 0; i < 40; ++i) d.push_back((i * 37 + 11) % 256);
  return d;
}

std::string ids_text(const std::vector<int32_t>& ids, size_t b, size_t e) {
  std::string s;
  for (size_t i = b; i < e; ++i) {
    if (i > b) s += ',';
    s += std::to_string(ids[i]);
  }
  return s;
}

TEST(CliPerplexity, EqualsExpOfTheMeanNllFromLogitsOut) {
  const std::vector<int32_t> doc = document();
  const std::string f = write("doc.ids", ids_text(doc, 0, doc.size()));
  const std::string m = data_dir("hf_v4_tiny"), base = "perplexity --model " + m + " --ids-file " +
                                                        f + " --compute fp32 --quiet --json";
  Result r = run(base + " --context 16");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  // Disjoint windows [0, 16), [16, 32), [32, 40): each scores all but its first token.
  const std::vector<std::array<size_t, 3>> wins = {{0, 16, 1}, {16, 32, 17}, {32, 40, 33}};
  ASSERT_EQ(j["windows"].size(), wins.size());
  double sum = 0;
  int64_t n = 0;
  for (const auto& [b, e, from] : wins) {
    const std::string npy = (tmpdir() / "window.npy").string();
    const Result w = run("run --model " + m + " --ids " + ids_text(doc, b, e) +
                         " --compute fp32 --quiet --logits-out " + npy);
    ASSERT_EQ(w.code, 0) << w.err;
    std::vector<int64_t> shape;
    const std::vector<float> logits = read_npy_f32(npy, &shape);
    ASSERT_EQ(shape[0], int64_t(e - b));
    const int64_t V = shape[1];
    for (size_t t = from; t < e; ++t) {  // row t - 1 - b predicts token t
      const float* row = logits.data() + (t - 1 - b) * size_t(V);
      double mx = -INFINITY, z = 0;
      for (int64_t i = 0; i < V; ++i) mx = std::max(mx, double(row[i]));
      for (int64_t i = 0; i < V; ++i) z += std::exp(double(row[i]) - mx);
      sum += std::log(z) + mx - double(row[doc[t]]);
      ++n;
    }
  }
  EXPECT_EQ(j["tokens_scored"], n);
  EXPECT_EQ(n, 37);
  const double want = std::exp(sum / double(n));
  EXPECT_NEAR(j["perplexity"].get<double>(), want, 1e-9 * want);
  EXPECT_GT(j["perplexity_error"].get<double>(), 0);
  // Overlapping windows (stride 8): every token from 1 on scored once, 4 windows.
  r = run(base + " --context 16 --stride 8");
  ASSERT_EQ(r.code, 0) << r.err;
  const json s = json::parse(r.out);
  EXPECT_EQ(s["tokens_scored"], 39);
  EXPECT_EQ(s["windows"].size(), 4u);
  // Two ranks (cp 2) agree with one.
  r = run(base + " --context 16", 2);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NEAR(json::parse(r.out)["perplexity"].get<double>(), want, 1e-5 * want);
  // Each rank its own windows (--cp 1: two dp groups, the second idle in the last round).
  r = run(base + " --context 16 --cp 1", 2);
  ASSERT_EQ(r.code, 0) << r.err;
  const json d = json::parse(r.out);
  EXPECT_NEAR(d["perplexity"].get<double>(), want, 1e-5 * want);
  EXPECT_EQ(d["tokens_scored"], 37);
  ASSERT_EQ(d["windows"].size(), j["windows"].size());
  for (size_t k = 0; k < j["windows"].size(); ++k)
    EXPECT_NEAR(d["windows"][k]["nll"].get<double>(), j["windows"][k]["nll"].get<double>(), 1e-5);
  // Text output and bad input.
  r = run("perplexity --model tiny --random-prompt 50 --context 20 --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("perplexity: ", 0), 0u) << r.out;
  expect_error(base + " --context 16 --stride 20", "--stride 20 is outside \\[1, --context 16\\]");
  expect_error("perplexity --model tiny --context 16 --random-prompt 1",
               "the document has 1 token\\(s\\): perplexity needs at least 2");
  expect_error("perplexity --model tiny --context 16", "perplexity needs a document", 2);
}

}  // namespace
}  // namespace modelone::test
