// `modelone run --prompt`: text in through the checkpoint's tokenizer.json, text out as tokens
// arrive. The transformers fixture gets a small byte-level BPE tokenizer.json (ids below its
// vocab_size of 256), so the expected ids are worked out by hand here.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/cli_support.h"
#include "tests/support.h"

namespace modelone::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Ids: 0 "<s>" (BOS, added by the post_processor), 1 "</s>", 2..95 the bytes '!'..'~' (which
// byte-level BPE writes as themselves), 96 'Ġ' (the space), 97 'Ċ' (the newline), then merges.
int byte_id(char c) { return c - '!' + 2; }
const std::vector<std::pair<std::string, std::string>> kMerges = {
    {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"Ġ", "w"}, {"o", "r"}, {"Ġw", "or"}};  // 98 .. 103

// What each id decodes to (special ones are left out of the text).
std::string id_text(int32_t id) {
  if (id >= 2 && id <= 95) return std::string(1, char(id - 2 + '!'));
  if (id == 96) return " ";
  if (id == 97) return "\n";
  if (id >= 98 && id < 98 + int(kMerges.size())) {
    std::string s = kMerges[size_t(id - 98)].first + kMerges[size_t(id - 98)].second;
    if (s.rfind("Ġ", 0) == 0) s = " " + s.substr(2);
    return s;
  }
  return "";
}

json tokenizer_json() {
  json vocab = json::object();
  for (char c = '!'; c <= '~'; ++c) vocab[std::string(1, c)] = byte_id(c);
  vocab["Ġ"] = 96;
  vocab["Ċ"] = 97;
  json merges = json::array();
  for (size_t r = 0; r < kMerges.size(); ++r) {
    vocab[kMerges[r].first + kMerges[r].second] = 98 + int(r);
    merges.push_back(kMerges[r].first + " " + kMerges[r].second);
  }
  auto added = [](int id, const std::string& content, bool special) {
    return json{{"id", id}, {"content", content}, {"special", special}, {"normalized", false}};
  };
  auto split = [](const std::string& re) {
    return json{{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"},
                {"invert", false}};
  };
  return {
      {"version", "1.0"},
      // "<big>" has an id past the model's vocabulary: a tokenizer of another model.
      {"added_tokens", {added(0, "<s>", true), added(1, "</s>", true), added(300, "<big>", false)}},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", json::array()}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {split("\\p{N}{1,3}"), split("[一-龥぀-ゟ゠-ヿ]+"),
          split("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
                "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {0}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

// The fixture with a tokenizer.json (written once per test process).
std::string text_model() {
  static const std::string dir = [] {
    const fs::path d = tmpdir() / "text_model";
    fs::remove_all(d);
    fs::copy(data_dir("hf_v4_tiny"), d, fs::copy_options::recursive);
    std::ofstream(d / "tokenizer.json") << tokenizer_json().dump(1);
    return d.string();
  }();
  return dir;
}

// "hello world": <s>, then "hello" -> (h,e) he, (l,l) ll, (he,ll) hell: {100, 'o'}; " world" ->
// (Ġ,w) Ġw, (o,r) or, (Ġw,or) Ġwor: {103, 'l', 'd'}.
const std::string kPrompt = "hello world";
const std::string kIds = "0,100," + std::to_string(byte_id('o')) + ",103," +
                         std::to_string(byte_id('l')) + "," + std::to_string(byte_id('d'));

const std::string kRun = " --generate 8 --ignore-eos --quiet --compute fp32";

TEST(CliText, PromptGivesTheHandComputedIds) {
  const std::string m = text_model();
  Result byids = run("run --model " + m + " --ids " + kIds + kRun + " --json");
  ASSERT_EQ(byids.code, 0) << byids.err;
  Result bytext = run("run --model " + m + " --prompt '" + kPrompt + "'" + kRun + " --json");
  ASSERT_EQ(bytext.code, 0) << bytext.err;
  const json a = json::parse(byids.out), b = json::parse(bytext.out);
  EXPECT_EQ(b["prompt_tokens"], 6);
  EXPECT_EQ(b["generated"], a["generated"]);
  ASSERT_EQ(a["generated"].size(), 8u);
  // --json carries the text of the generated ids next to them.
  std::string want;
  for (int32_t id : a["generated"].get<std::vector<int32_t>>()) want += id_text(id);
  EXPECT_EQ(b["text"], want);
  EXPECT_EQ(a["text"], want);  // a tokenizer in the directory gives text for --ids runs too

  // Text output: the streamed text on its own line, then the ids line as before.
  Result plain = run("run --model " + m + " --prompt '" + kPrompt + "'" + kRun);
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_EQ(plain.out.rfind("text: " + want + "\n", 0), 0u) << plain.out;
  std::string ids_line;
  for (auto& g : a["generated"]) {  // two steps: "literal" + std::string trips gcc 12's -Wrestrict
    if (!ids_line.empty()) ids_line += ' ';
    ids_line += g.dump();
  }
  EXPECT_NE(plain.out.find("\ngenerated: " + ids_line + "\n"), std::string::npos) << plain.out;

  // --prompt-file (used as is) over two ranks gives the same tokens.
  const fs::path f = tmpdir() / "prompt.txt";
  std::ofstream(f) << kPrompt;
  Result two = run("run --model " + m + " --prompt-file " + f.string() + kRun + " --json", 2);
  ASSERT_EQ(two.code, 0) << two.err;
  EXPECT_EQ(json::parse(two.out)["generated"], a["generated"]);
}

TEST(CliText, StopStringsAndStopIds) {
  const std::string m = text_model(), base = "run --model " + m + " --prompt '" + kPrompt + "'" +
                                             " --generate 16 --ignore-eos --quiet --compute fp32";
  Result greedy = run(base + " --json");
  ASSERT_EQ(greedy.code, 0) << greedy.err;
  const json g = json::parse(greedy.out);
  const auto ids = g["generated"].get<std::vector<int32_t>>();
  const std::string text = g["text"];
  EXPECT_EQ(g["finish_reason"], "length");
  ASSERT_GE(text.size(), 3u) << text;
  std::string pieces;  // the text holds every token's, the last one's too
  for (int32_t id : ids) pieces += id_text(id);
  EXPECT_EQ(text, pieces);
  // A stop string from the middle of the greedy text: the run ends at the token completing its
  // first occurrence, and the text stops just before it.
  const std::string stop = text.substr(text.size() / 2, 2);
  const size_t at = text.find(stop);
  size_t n = 0;
  for (std::string t; t.find(stop) == std::string::npos; ++n) t += id_text(ids[n]);
  Result r = run(base + " --json --stop '" + stop + "' --stop 'never here'");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["text"], text.substr(0, at)) << stop;
  EXPECT_EQ(j["finish_reason"], "stop");
  EXPECT_EQ(j["generated"], json(std::vector<int32_t>(ids.begin(), ids.begin() + long(n))));
  // Over two ranks (every rank decides the stop from its own copy of the text): the same.
  r = run(base + " --json --stop '" + stop + "'", 2);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["generated"], j["generated"]);
  EXPECT_EQ(json::parse(r.out)["text"], j["text"]);
  // Streamed text holds back what might start a stop, and never shows the stop itself.
  r = run(base + " --stop '" + stop + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("text: " + text.substr(0, at) + "\n", 0), 0u) << r.out;
  // A batch job (the batch scheduler) cuts the same text at the same token.
  const fs::path in = tmpdir() / "stop_job.jsonl", out = tmpdir() / "stop_out.jsonl";
  std::ofstream(in) << json{{"id", 1}, {"prompt", kPrompt}, {"max_tokens", 16}, {"ignore_eos", true},
                            {"stop", {stop}}}.dump() << "\n";
  fs::remove(out);
  r = run("run --model " + m + " --compute fp32 --quiet --batch " + in.string() + " --out " + out.string(), 2);
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream f(out);
  std::string line;
  std::getline(f, line);
  const json b = json::parse(line);
  EXPECT_EQ(b["text"], j["text"]);
  EXPECT_EQ(b["tokens"], j["generated"]);
  EXPECT_EQ(b["finish_reason"], "stop");
  // A stop id ends the sequence on that token, kept in the tokens like eos.
  r = run(base + " --json --stop-ids " + std::to_string(ids[2]) + ",255");
  ASSERT_EQ(r.code, 0) << r.err;
  j = json::parse(r.out);
  const auto first = std::find(ids.begin(), ids.end(), ids[2]) - ids.begin() + 1;
  EXPECT_EQ(j["generated"].size(), size_t(first));
  EXPECT_EQ(j["finish_reason"], "stop");
}

TEST(CliText, RefusedWithoutAUsableTokenizer) {
  expect_error("run --model tiny --prompt hi",
               "^modelone: error: --prompt needs a tokenizer.json in the model directory; 'tiny' "
               "is a preset with none \\(use --ids\\)$");
  expect_error("run --model tiny --prompt hi", "'tiny' is a preset with none", 2);
  const fs::path f = tmpdir() / "p.txt";
  std::ofstream(f) << "hi";
  expect_error("run --model " + data_dir("hf_v4_tiny") + " --prompt-file " + f.string(),
               "--prompt-file needs a tokenizer.json in the model directory; '.*hf_v4_tiny' has "
               "none");
  expect_error("run --model " + text_model() + " --prompt-file " + tmpdir().string(),
               "--prompt-file: '.*' is a directory");
  expect_error("run --model tiny --prompt hi --ids 1", "--ids excludes --prompt");
  expect_error("run --model tiny --prompt hi --prompt-file x", "--prompt excludes --prompt-file");
  // Ids past the model's vocabulary, text with no token, a tokenizer.json modelone cannot read.
  expect_error("run --model " + text_model() + " --prompt 'a<big>'",
               "--prompt: tokenizer.json gave token id 300, outside the vocabulary \\[0, 256\\)");
  expect_error("run --model " + text_model() + " --prompt caf\xC3\xA9",
               "--prompt: .*tokenizer.json has no token for byte 0xc3 of 'caf\\\\xc3\\\\xa9'");
  const fs::path bad = tmpdir() / "bad_tokenizer";
  fs::remove_all(bad);
  fs::copy(text_model(), bad, fs::copy_options::recursive);
  json j = tokenizer_json();
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  std::ofstream(bad / "tokenizer.json") << j.dump();
  expect_error("run --model " + bad.string() + " --prompt hi",
               "bad_tokenizer/tokenizer.json: pre_tokenizer 'Metaspace' is not supported", 2);
  // Without --prompt the same file only costs the text: the run goes on with a note.
  Result r = run("run --model " + bad.string() + " --ids 3,4 --generate 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("no text output: "), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("text: "), std::string::npos) << r.out;
}

}  // namespace
}  // namespace modelone::test
