#include "tests/tokenizer_json.h"

#include <algorithm>

namespace modelone::test {

using json = nlohmann::json;

std::string byte_char(int b) {
  std::vector<int> bs;
  for (int c = '!'; c <= '~'; ++c) bs.push_back(c);
  for (int c = 0xA1; c <= 0xAC; ++c) bs.push_back(c);
  for (int c = 0xAE; c <= 0xFF; ++c) bs.push_back(c);
  int cp = -1, extra = 0;
  for (int c = 0; c < 256 && cp < 0; ++c) {
    const bool self = std::find(bs.begin(), bs.end(), c) != bs.end();
    if (c == b) cp = self ? c : 256 + extra;
    if (!self) ++extra;
  }
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

const std::vector<std::pair<std::string, std::string>> kMerges = {
    {"h", "e"},     // 0 -> 256 "he"
    {"l", "l"},     // 1 -> 257 "ll"
    {"he", "ll"},   // 2 -> 258 "hell"
    {"Ġ", "w"},     // 3 -> 259 "Ġw"
    {"o", "r"},     // 4 -> 260 "or"
    {"e", "l"},     // 5 -> 261 "el"
    {"Ġw", "or"},   // 6 -> 262 "Ġwor"
    {"1", "2"},     // 7 -> 263 "12"
    {"12", "3"},    // 8 -> 264 "123"
};

json added(int id, const std::string& content, bool special) {
  return {{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},   {"normalized", !special}, {"special", special}};
}

json deepseek_pre_tokenizer() {
  auto split = [](const std::string& re) {
    return json{{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"},
                {"invert", false}};
  };
  return {{"type", "Sequence"},
          {"pretokenizers",
           {split("\\p{N}{1,3}"), split("[一-龥぀-ゟ゠-ヿ]+"),
            split("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
                  "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
             {"use_regex", false}}}}};
}

json make_json(bool pair_merges) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  json merges = json::array();
  for (size_t r = 0; r < kMerges.size(); ++r) {
    const auto& [a, b] = kMerges[r];
    vocab[a + b] = 256 + int(r);
    if (pair_merges) merges.push_back({a, b});
    else merges.push_back(a + " " + b);
  }
  return {{"version", "1.0"},
          {"added_tokens", {added(300, "<|eot|>", true), added(301, "<|e", true)}},
          {"normalizer", nullptr},
          {"pre_tokenizer", deepseek_pre_tokenizer()},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model",
           {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
            {"byte_fallback", false}, {"vocab", vocab}, {"merges", merges}}}};
}

}  // namespace modelone::test
