#include "model/text/pretokenize.h"

#include <algorithm>
#include <array>

namespace modelone {

namespace {

using C = CharClass;
constexpr C L = C::Letter, M = C::Mark, N = C::Number, P = C::PunctSymbol, S = C::Space,
            O = C::Other;

// From `first` up to the next entry's first, code points have class `cls` (see the header for
// what is exact and what approximate). Sorted; covers 0x80 upwards.
struct Range {
  uint32_t first;
  C cls;
};
constexpr Range kRanges[] = {
    // Latin-1 (exact).
    {0x80, O}, {0x85, S}, {0x86, O}, {0xA0, S}, {0xA1, P}, {0xAA, L}, {0xAB, P}, {0xAD, O},
    {0xAE, P}, {0xB2, N}, {0xB4, P}, {0xB5, L}, {0xB6, P}, {0xB9, N}, {0xBA, L}, {0xBB, P},
    {0xBC, N}, {0xBF, P}, {0xC0, L}, {0xD7, P}, {0xD8, L}, {0xF7, P}, {0xF8, L},
    // Spacing modifier letters (Lm / Sk, exact), combining diacritics, Greek, Cyrillic.
    {0x2C2, P}, {0x2C6, L}, {0x2D2, P}, {0x2E0, L}, {0x2E5, P}, {0x2EC, L}, {0x2ED, P},
    {0x2EE, L}, {0x2EF, P}, {0x300, M}, {0x370, L}, {0x375, P}, {0x376, L}, {0x37E, P},
    {0x37F, L}, {0x384, P}, {0x386, L}, {0x387, P}, {0x388, L}, {0x3F6, P}, {0x3F7, L},
    {0x482, P}, {0x483, M}, {0x48A, L},
    // Hebrew points, Arabic (digits, marks, punctuation).
    {0x591, M}, {0x5C8, L}, {0x600, O}, {0x606, P}, {0x610, M}, {0x61B, P}, {0x620, L},
    {0x64B, M}, {0x660, N}, {0x66A, P}, {0x66E, L}, {0x6D4, P}, {0x6D5, L}, {0x6D6, M},
    {0x6EE, L}, {0x6F0, N}, {0x6FA, L},
    // Indic blocks (their digit columns are found in char_class), Thai, Lao, Tibetan, Myanmar.
    {0xE3F, P}, {0xE40, L}, {0xE4F, P}, {0xE50, N}, {0xE5A, P}, {0xE5C, L}, {0xED0, N},
    {0xEDA, L}, {0xF20, N}, {0xF34, L}, {0x1040, N}, {0x104A, L}, {0x1090, N}, {0x109A, L},
    {0x1680, S}, {0x1681, L}, {0x17E0, N}, {0x17EA, L}, {0x1810, N}, {0x181A, L},
    {0x1AB0, M}, {0x1B00, L}, {0x1DC0, M}, {0x1E00, L},
    // General punctuation, super/subscripts, currency, symbol marks, letterlike, number forms.
    {0x2000, S}, {0x200B, O}, {0x2010, P}, {0x2028, S}, {0x202A, O}, {0x202F, S}, {0x2030, P},
    {0x205F, S}, {0x2060, O}, {0x2070, N}, {0x2071, L}, {0x2072, N}, {0x207A, P}, {0x207F, L},
    {0x2080, N}, {0x208A, P}, {0x208F, L}, {0x20A0, P}, {0x20D0, M}, {0x2100, P}, {0x2102, L},
    {0x2103, P}, {0x2107, L}, {0x2108, P}, {0x210A, L}, {0x2114, P}, {0x2115, L}, {0x2116, P},
    {0x2119, L}, {0x211E, P}, {0x2124, L}, {0x2125, P}, {0x2126, L}, {0x2127, P}, {0x2128, L},
    {0x2129, P}, {0x212A, L}, {0x212E, P}, {0x212F, L}, {0x213A, P}, {0x213C, L}, {0x2140, P},
    {0x2145, L}, {0x214A, P}, {0x214E, L}, {0x214F, P}, {0x2150, N},
    // Arrows, math, technical, enclosed numbers, box drawing, dingbats, ...
    {0x2190, P}, {0x2460, N}, {0x249C, P}, {0x24EA, N}, {0x2500, P}, {0x2776, N}, {0x2794, P},
    {0x2C00, L}, {0x2DE0, M}, {0x2E00, P},
    // CJK symbols and punctuation, kana, CJK strokes and enclosed forms.
    {0x3000, S}, {0x3001, P}, {0x3005, L}, {0x3007, N}, {0x3008, P}, {0x3021, N}, {0x302A, M},
    {0x3030, P}, {0x3031, L}, {0x3036, P}, {0x3038, N}, {0x303B, L}, {0x303D, P}, {0x3040, L},
    {0x3099, M}, {0x309B, P}, {0x309D, L}, {0x30A0, P}, {0x30A1, L}, {0x30FB, P}, {0x30FC, L},
    {0x3190, P}, {0x31A0, L}, {0x31C0, P}, {0x31F0, L}, {0x3200, P}, {0x3220, N}, {0x322A, P},
    {0x3248, N}, {0x3250, P}, {0x3251, N}, {0x3260, P}, {0x3280, N}, {0x328A, P}, {0x32B1, N},
    {0x32C0, P},
    // CJK ideographs, Yi, Hangul, private use, compatibility and fullwidth forms.
    {0x3400, L}, {0x4DC0, P}, {0x4E00, L}, {0xA490, P}, {0xA4D0, L}, {0xA700, P}, {0xA722, L},
    {0xD800, O}, {0xF900, L}, {0xFE00, M}, {0xFE10, P}, {0xFE20, M}, {0xFE30, P}, {0xFE70, L},
    {0xFEFF, O}, {0xFF01, P}, {0xFF10, N}, {0xFF1A, P}, {0xFF21, L}, {0xFF3B, P}, {0xFF41, L},
    {0xFF5B, P}, {0xFF66, L}, {0xFFE0, P}, {0xFFF0, O}, {0xFFFC, P}, {0xFFFE, O},
    // Supplementary planes: historic scripts, music, math letters and digits, emoji.
    {0x10000, L}, {0x1D000, P}, {0x1D400, L}, {0x1D7CE, N}, {0x1D800, L}, {0x1F000, P},
    {0x1F100, N}, {0x1F10D, P}, {0x1FBF0, N}, {0x1FBFA, P}, {0x20000, L}, {0x40000, O},
    {0xE0100, M}, {0xE01F0, O},
};
constexpr bool ranges_sorted() {
  for (size_t i = 1; i < std::size(kRanges); ++i)
    if (kRanges[i - 1].first >= kRanges[i].first) return false;
  return true;
}
static_assert(ranges_sorted(), "kRanges must be sorted for the binary search");

bool is_space(uint32_t c) { return char_class(c) == C::Space; }
bool is_nl(uint32_t c) { return c == '\r' || c == '\n'; }
bool is_ascii_punct(uint32_t c) { return c < 0x80 && char_class(c) == C::PunctSymbol; }
bool is_ascii_alpha(uint32_t c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool is_cjk(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x3040 && c <= 0x30FF);
}
bool is_letter_or_mark(uint32_t c) {
  const C k = char_class(c);
  return k == C::Letter || k == C::Mark;
}

using Cps = std::vector<uint32_t>;

// Each matcher: the length of the rule's match at pos within [pos, end), 0 for none.
size_t match_digits(const Cps& s, size_t pos, size_t end) {
  size_t n = 0;
  while (n < 3 && pos + n < end && char_class(s[pos + n]) == C::Number) ++n;
  return n;
}

size_t match_cjk(const Cps& s, size_t pos, size_t end) {
  size_t i = pos;
  while (i < end && is_cjk(s[i])) ++i;
  return i - pos;
}

// The Words regex: its alternatives in order, as a backtracking engine would take them.
size_t match_words(const Cps& s, size_t pos, size_t end) {
  auto run = [&](size_t i, auto pred) {
    while (i < end && pred(s[i])) ++i;
    return i;
  };
  const uint32_t c = s[pos];
  // [ASCII punctuation][A-Za-z]+
  if (is_ascii_punct(c) && pos + 1 < end && is_ascii_alpha(s[pos + 1]))
    return run(pos + 1, is_ascii_alpha) - pos;
  // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+: with the optional character, else without.
  const C k = char_class(c);
  if (!is_nl(c) && k != C::Letter && k != C::PunctSymbol && pos + 1 < end &&
      is_letter_or_mark(s[pos + 1]))
    return run(pos + 1, is_letter_or_mark) - pos;
  if (is_letter_or_mark(c)) return run(pos, is_letter_or_mark) - pos;
  // ' '?[\p{P}\p{S}]+[\r\n]*
  const size_t p0 = pos + (c == ' ' ? 1 : 0);
  if (p0 < end && char_class(s[p0]) == C::PunctSymbol) {
    const size_t i = run(p0, [](uint32_t x) { return char_class(x) == C::PunctSymbol; });
    return run(i, is_nl) - pos;
  }
  if (!is_space(c)) return 0;
  const size_t ws_end = run(pos, is_space);
  // \s*[\r\n]+: \s* gives back characters until [\r\n]+ fits, which ends at the run's last
  // line break.
  for (size_t i = ws_end; i > pos; --i)
    if (is_nl(s[i - 1])) return i - pos;
  // \s+(?!\S): the whole run at the end of the piece, else all but its last character.
  if (ws_end == end) return ws_end - pos;
  if (ws_end - pos >= 2) return ws_end - 1 - pos;
  return ws_end - pos;  // \s+
}

}  // namespace

CharClass char_class(uint32_t c) {
  if (c < 0x80) {
    if (is_ascii_alpha(c)) return C::Letter;
    if (c >= '0' && c <= '9') return C::Number;
    if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return C::Space;
    if (c > 0x20 && c < 0x7F) return C::PunctSymbol;
    return C::Other;
  }
  // The ten Indic blocks (Devanagari 0x900 .. Sinhala 0xD80) keep their digits at 0x66..0x6F.
  if (c >= 0x900 && c < 0xE00) {
    const uint32_t col = c & 0x7F;
    if (col >= 0x66 && col <= 0x6F) return C::Number;
    if (c == 0x964 || c == 0x965) return C::PunctSymbol;  // dandas
    return C::Letter;
  }
  const Range* r = std::upper_bound(std::begin(kRanges), std::end(kRanges), c,
                                    [](uint32_t v, const Range& x) { return v < x.first; });
  return r == std::begin(kRanges) ? C::Other : (r - 1)->cls;
}

bool split_rule_from_regex(const std::string& regex, SplitRule* rule) {
  // A file may spell \r and \n in the regex as escapes or as the characters themselves.
  std::string re;
  for (size_t i = 0; i < regex.size(); ++i) {
    if (regex[i] == '\\' && i + 1 < regex.size() && (regex[i + 1] == 'r' || regex[i + 1] == 'n')) {
      re += regex[i + 1] == 'r' ? '\r' : '\n';
      ++i;
    } else {
      re += regex[i];
    }
  }
  static const std::string kDigits = "\\p{N}{1,3}";
  // [一-龥぀-ゟ゠-ヿ]+
  static const std::string kCjk =
      "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+";
  static const std::string kWords =
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
      "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
  if (re == kDigits) *rule = SplitRule::Digits;
  else if (re == kCjk) *rule = SplitRule::Cjk;
  else if (re == kWords) *rule = SplitRule::Words;
  else return false;
  return true;
}

int utf8_step(const unsigned char* s, size_t n) {
  const unsigned char c = s[0];
  if (c < 0x80) return 1;
  int len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range (Unicode's table 3-7)
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // past U+10FFFF
  } else {
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    if (size_t(k) >= n) return 0;
    const unsigned char b = s[k];
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return -k;
  }
  return len;
}

bool decode_utf8(const std::string& s, CodePoints* out, size_t* bad) {
  out->cp.clear();
  out->at.clear();
  const auto* u = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    const int n = utf8_step(u + i, s.size() - i);
    if (n <= 0) {
      *bad = i;
      return false;
    }
    static constexpr std::array<unsigned char, 5> lead_mask = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t c = u[i] & lead_mask[size_t(n)];
    for (int k = 1; k < n; ++k) c = (c << 6) | (u[i + size_t(k)] & 0x3F);
    out->cp.push_back(c);
    out->at.push_back(i);
    i += size_t(n);
  }
  out->at.push_back(s.size());
  return true;
}

std::vector<std::pair<size_t, size_t>> split_pieces(const std::vector<uint32_t>& cps,
                                                    const std::vector<SplitRule>& rules) {
  std::vector<std::pair<size_t, size_t>> pieces;
  if (!cps.empty()) pieces.emplace_back(0, cps.size());
  for (SplitRule rule : rules) {
    size_t (*match)(const Cps&, size_t, size_t) =
        rule == SplitRule::Digits ? match_digits : rule == SplitRule::Cjk ? match_cjk : match_words;
    std::vector<std::pair<size_t, size_t>> next;
    for (auto [b, e] : pieces) {
      size_t gap = b;  // start of the stretch no match has covered yet
      for (size_t pos = b; pos < e;) {
        const size_t n = match(cps, pos, e);
        if (n == 0) {
          ++pos;
          continue;
        }
        if (gap < pos) next.emplace_back(gap, pos);
        next.emplace_back(pos, pos + n);
        pos += n;
        gap = pos;
      }
      if (gap < e) next.emplace_back(gap, e);
    }
    pieces = std::move(next);
  }
  return pieces;
}

}  // namespace modelone
