// Text to token ids and back for `modelone run --prompt`: a Hugging Face tokenizer.json holding
// byte-level BPE as DeepSeek V3/V4 ship it. What is read, and what is refused with one error
// naming the file (rather than encoding text differently from the model's training):
//  - model: type BPE, vocab (token -> id), merges ("a b" strings or [a, b] pairs), ignore_merges;
//    no dropout, byte_fallback, continuing_subword_prefix or end_of_word_suffix.
//  - added_tokens: matched verbatim before pre-tokenization, leftmost then longest first; those
//    with normalized false in a first pass, as transformers does; lstrip / rstrip absorb the
//    white space beside them; single_word is refused.
//  - normalizer: none (null or an empty Sequence).
//  - pre_tokenizer: a Sequence of Split (DeepSeek's three regexes, behavior Isolated) then
//    ByteLevel (add_prefix_space false, use_regex false). The regexes use Unicode classes that
//    std::regex lacks, so model/text/pretokenize.h scans code points by hand (its header says which
//    non-ASCII characters are classified approximately).
//  - post_processor: none, ByteLevel, TemplateProcessing (its `single` template: the special
//    tokens around the text, e.g. DeepSeek's BOS), or a Sequence of those.
//  - decoder: none or ByteLevel.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/text/pretokenize.h"

namespace modelone {

class Tokenizer {
 public:
  // Reads and checks a tokenizer.json; a malformed or unsupported file is one Error naming path.
  static Tokenizer load(const std::string& path);
  // The same from the file's text; `what` names it in errors.
  static Tokenizer parse(const std::string& json_text, const std::string& what);

  // Text (UTF-8) to ids: added tokens, pre-tokenization and BPE of the text between them, and
  // the post_processor's template around it. Invalid UTF-8, or a piece with no token (byte-level
  // BPE has no unknown token), is an Error.
  std::vector<int32_t> encode(const std::string& text) const;
  // The pre-tokenizer's pieces of text that holds no added token, as UTF-8 (tests).
  std::vector<std::string> pre_tokenize(const std::string& text) const;
  // The bytes an id stands for: an added token's content ("" when skip_special and it is
  // special), a vocab token through the byte map. Ids the file does not know give "" (the
  // model's vocabulary is often padded past the tokenizer's).
  std::string token_bytes(int32_t id, bool skip_special = false) const;
  // The text of ids, ill-formed UTF-8 replaced by U+FFFD as transformers' decode does.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // One more than the largest id the file defines.
  int64_t id_limit() const { return id_limit_; }
  // The most bytes one token can stand for (at least 1): a text of B bytes is at least
  // B / longest_token_bytes() tokens.
  int64_t longest_token_bytes() const { return longest_; }
  // The ids the post_processor puts before the text.
  const std::vector<int32_t>& prefix_ids() const { return prefix_; }

 private:
  friend struct TokenizerParser;  // tokenizer.cpp: parse's parts, one per section of the file
  struct Added {
    std::string content;
    int32_t id;
    bool special, lstrip, rstrip;
  };
  struct Merge {
    int32_t rank, id;
  };
  // Splits text at the added tokens of one pass; pieces are (begin, end, added index or -1).
  struct Span {
    size_t b, e;
    int added;
  };
  void split_added(const std::string& text, bool normalized_pass, std::vector<Span>* spans) const;
  void bpe(const std::string& piece, std::vector<int32_t>* out) const;

  std::string what_;  // the file, for errors
  std::unordered_map<std::string, int32_t> vocab_;
  // By id, not a dense array: one id of 1e8 in a small file must not cost gigabytes.
  std::unordered_map<int32_t, std::string> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> rank, merged id
  bool ignore_merges_ = false;
  std::vector<Added> added_;
  // Per pass (normalized false, true) and first byte: indices into added_, longest first.
  std::array<std::array<std::vector<size_t>, 256>, 2> added_first_;
  std::unordered_map<int32_t, size_t> added_by_id_;
  std::vector<SplitRule> splits_;
  std::vector<int32_t> prefix_, suffix_;
  int64_t id_limit_ = 0;
  int64_t longest_ = 1;
};

// Decoding token by token for streamed output: the bytes of a UTF-8 character split over two
// tokens wait for the rest, so every piece returned is whole characters.
class TextStream {
 public:
  explicit TextStream(const Tokenizer& t, bool skip_special = true) : t_(t), skip_(skip_special) {}
  std::string push(int32_t id);  // the characters completed by this token
  std::string finish();          // what is left: an unfinished character as U+FFFD
 private:
  const Tokenizer& t_;
  bool skip_;
  std::string pending_;
};

// Valid UTF-8 from bytes: each ill-formed part becomes U+FFFD. With tail, a valid but unfinished
// character at the end goes to *tail instead (it may be completed by the next bytes).
std::string utf8_lossy(const std::string& bytes, std::string* tail = nullptr);

}  // namespace modelone
