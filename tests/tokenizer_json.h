// A small byte-level BPE tokenizer.json for tests (tokenizer_test, the fuzz test): the 256 byte
// tokens (id = byte value), a few merges (id 256 + rank), two added tokens and DeepSeek V3's
// pre-tokenizer.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace modelone::test {

// GPT-2's bytes_to_unicode, written out independently of the tokenizer's own table.
std::string byte_char(int b);
// Merges by rank (the id of the result is 256 + rank).
extern const std::vector<std::pair<std::string, std::string>> kMerges;
nlohmann::json added(int id, const std::string& content, bool special);
// DeepSeek V3's pre-tokenizer, as its tokenizer.json has it.
nlohmann::json deepseek_pre_tokenizer();
// The whole file; pair_merges writes merges as [a, b] pairs instead of "a b" strings.
nlohmann::json make_json(bool pair_merges = false);

}  // namespace modelone::test
