// DeepSeek V3/V4's pre-tokenizer, the Split steps of its tokenizer.json, scanned by hand over
// code points: the regexes use \p{L}, \p{N}, \p{P}, \p{S}, \p{M}, which std::regex lacks.
//   Digits: \p{N}{1,3}
//   Cjk:    [\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+
//   Words:  [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+ | [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
//           | ?[\p{P}\p{S}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
// Each is applied, in the file's order, to every piece the previous ones left, with behavior
// Isolated: a match becomes a piece and so does each stretch between matches.
//
// Character classes: ASCII, Latin-1, the Unicode White_Space characters and the CJK ranges
// above are exact. Elsewhere a compact table of block ranges stands in for the general category
// (Greek, Cyrillic, Indic, Hangul, CJK ideographs: letters; combining blocks: marks; the Indic
// digit columns, fullwidth digits, circled numbers: numbers; arrows, math, box drawing, emoji:
// symbols). Checked against Hugging Face tokenizers 0.22 one code point at a time, 1.8% of the
// assigned code points split differently, none in Latin, Greek and Coptic, Cyrillic, CJK, kana,
// Hangul, fullwidth forms, general punctuation, arrows / math or emoji: they are the signs,
// digits and marks inside other scripts' blocks that the table counts as letters. \p{P} and
// \p{S} are one class here: no rule tells them apart.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace modelone {

enum class SplitRule : uint8_t { Digits, Cjk, Words };

// The rule a Split's regex (as the JSON file holds it, decoded) is; false for any other regex.
bool split_rule_from_regex(const std::string& regex, SplitRule* rule);

enum class CharClass : uint8_t { Letter, Mark, Number, PunctSymbol, Space, Other };
CharClass char_class(uint32_t cp);

// Valid UTF-8 decoded: code points and the byte offset of each (plus the end). Returns false at
// the first ill-formed byte, with its offset in *bad.
struct CodePoints {
  std::vector<uint32_t> cp;
  std::vector<size_t> at;  // cp.size() + 1 offsets
};
bool decode_utf8(const std::string& s, CodePoints* out, size_t* bad);

// The length of the UTF-8 sequence at s[0..n) when complete and valid; 0 when s[0..n) is a valid
// but unfinished start of one; -k when its first k bytes (k >= 1) are ill-formed.
int utf8_step(const unsigned char* s, size_t n);

// The pieces of cps (code point ranges [begin, end)) after the rules in order.
std::vector<std::pair<size_t, size_t>> split_pieces(const std::vector<uint32_t>& cps,
                                                    const std::vector<SplitRule>& rules);

}  // namespace modelone
