#include "model/text/tokenizer.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

#include "model/base/check.h"

namespace modelone {

namespace {

using nlohmann::json;

std::string utf8_of(uint32_t c) {
  std::string s;
  if (c < 0x80) {
    s += char(c);
  } else if (c < 0x800) {
    s += char(0xC0 | (c >> 6));
    s += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    s += char(0xE0 | (c >> 12));
    s += char(0x80 | ((c >> 6) & 0x3F));
    s += char(0x80 | (c & 0x3F));
  } else {
    s += char(0xF0 | (c >> 18));
    s += char(0x80 | ((c >> 12) & 0x3F));
    s += char(0x80 | ((c >> 6) & 0x3F));
    s += char(0x80 | (c & 0x3F));
  }
  return s;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes for
// U+0100 onwards in byte order (so the space is 'Ġ', U+0120). Byte-level vocabularies are
// written in these characters.
struct ByteMap {
  std::array<std::string, 256> to_char;  // byte -> its character, as UTF-8
  std::array<int, 324> to_byte;          // code point -> byte, -1 where none
  ByteMap() {
    to_byte.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t c = self ? uint32_t(b) : uint32_t(256 + extra++);
      to_char[size_t(b)] = utf8_of(c);
      to_byte[c] = b;
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

std::string type_of(const json& j) {
  if (!j.is_object()) return "";
  auto it = j.find("type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

bool is_absent(const json& o, const char* key) {
  auto it = o.find(key);
  return it == o.end() || it->is_null();
}

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

// The length of the white space character (Unicode White_Space) that starts at / ends at text[i],
// 0 when there is none there. The text is valid UTF-8.
size_t space_at(const std::string& text, size_t i) {
  const auto* u = reinterpret_cast<const unsigned char*>(text.data());
  const int n = utf8_step(u + i, text.size() - i);
  CodePoints c;
  size_t bad = 0;
  return n > 0 && decode_utf8(text.substr(i, size_t(n)), &c, &bad) &&
                 char_class(c.cp[0]) == CharClass::Space
             ? size_t(n) : 0;
}
size_t space_before(const std::string& text, size_t i) {
  size_t b = i;
  while (b > 0 && i - b < 4 && (static_cast<unsigned char>(text[b - 1]) & 0xC0) == 0x80) --b;
  if (b == 0) return 0;
  --b;  // the lead byte
  return space_at(text, b) == i - b ? i - b : 0;
}

}  // namespace

std::string utf8_lossy(const std::string& bytes, std::string* tail) {
  static const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  for (size_t i = 0; i < bytes.size();) {
    const int n = utf8_step(u + i, bytes.size() - i);
    if (n > 0) {
      out.append(bytes, i, size_t(n));
      i += size_t(n);
    } else if (n == 0 && tail) {  // unfinished: the next bytes may complete it
      *tail = bytes.substr(i);
      return out;
    } else {
      // One U+FFFD per ill-formed part (its longest valid start), as Rust's from_utf8_lossy.
      out += kReplacement;
      i = n == 0 ? bytes.size() : i + size_t(-n);
    }
  }
  if (tail) tail->clear();
  return out;
}

Tokenizer Tokenizer::load(const std::string& path) {
  MO_REQUIRE(!std::filesystem::is_directory(path), "'", path,
             "' is a directory, not a tokenizer.json");
  std::ifstream f(path, std::ios::binary);
  MO_REQUIRE(f.good(), "cannot open '", path, "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse(ss.str(), path);
}

// parse's parts, one per section of tokenizer.json. A field of an unexpected JSON type (an id
// that is a string, ...) throws json::exception, which parse turns into one error naming the file.
struct TokenizerParser {
  Tokenizer& t;
  const std::string& what;

  bool flag(const json& o, const char* key, bool def) const {
    if (is_absent(o, key)) return def;
    MO_REQUIRE(o.at(key).is_boolean(), what, ": '", key, "' must be true or false");
    return o.at(key).get<bool>();
  }

  // The model: byte-level BPE. Returns one more than its largest id.
  int64_t model(const json& j) {
    MO_REQUIRE(j.contains("model") && j["model"].is_object(), what, ": no \"model\" object");
    const json& m = j["model"];
    const std::string mtype = type_of(m);
    MO_REQUIRE(mtype == "BPE", what, ": model type '", mtype,
               "' is not supported (modelone reads byte-level BPE)");
    MO_REQUIRE(m.contains("vocab") && m["vocab"].is_object(), what,
               ": model.vocab is missing or not an object");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      MO_REQUIRE(is_absent(m, k) || m[k] == "", what, ": model.", k, " is not supported");
    MO_REQUIRE(is_absent(m, "dropout"), what, ": model.dropout is not supported");
    MO_REQUIRE(!flag(m, "byte_fallback", false), what, ": model.byte_fallback is not supported");
    t.ignore_merges_ = flag(m, "ignore_merges", false);
    int64_t limit = 0;
    for (const auto& [tok, id] : m["vocab"].items()) {
      MO_REQUIRE(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < INT32_MAX,
                 what, ": model.vocab['", printable(tok), "'] is not a token id");
      t.vocab_[tok] = id.get<int32_t>();
      limit = std::max(limit, id.get<int64_t>() + 1);
    }
    merges(m);
    return limit;
  }

  void merges(const json& m) {
    auto vocab_id = [&](const std::string& tok, size_t rank) {
      auto it = t.vocab_.find(tok);
      MO_REQUIRE(it != t.vocab_.end(), what, ": merge ", rank, ": '", printable(tok),
                 "' is not in model.vocab");
      return it->second;
    };
    const json list = is_absent(m, "merges") ? json::array() : m["merges"];
    MO_REQUIRE(list.is_array(), what, ": model.merges is not a list");
    for (size_t r = 0; r < list.size(); ++r) {
      std::string a, b;
      const json& e = list[r];
      if (e.is_string()) {  // "a b"
        const std::string s = e.get<std::string>();
        const size_t sp = s.find(' ');
        MO_REQUIRE(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos, what,
                   ": merge ", r, ": '", printable(s), "' is not two tokens separated by a space");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {  // ["a", "b"]
        MO_REQUIRE(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), what,
                   ": merge ", r, " is neither \"a b\" nor [\"a\", \"b\"]");
        a = e[0].get<std::string>();
        b = e[1].get<std::string>();
      }
      // A later duplicate replaces an earlier one, as in transformers' tokenizers.
      t.merges_[pair_key(vocab_id(a, r), vocab_id(b, r))] = {int32_t(r), vocab_id(a + b, r)};
    }
  }

  // Added tokens; raises *limit past their ids.
  void added_tokens(const json& j, int64_t* limit) {
    const json added = is_absent(j, "added_tokens") ? json::array() : j["added_tokens"];
    MO_REQUIRE(added.is_array(), what, ": added_tokens is not a list");
    for (const json& a : added) {
      MO_REQUIRE(a.is_object() && a.contains("id") && a["id"].is_number_integer() &&
                     a["id"].get<int64_t>() >= 0 && a["id"].get<int64_t>() < INT32_MAX &&
                     a.contains("content") && a["content"].is_string(),
                 what, ": an added token without an id and content");
      Tokenizer::Added x{a["content"].get<std::string>(), a["id"].get<int32_t>(), flag(a, "special", false),
              flag(a, "lstrip", false), flag(a, "rstrip", false)};
      MO_REQUIRE(!flag(a, "single_word", false), what, ": added token '", printable(x.content),
                 "': single_word is not supported");
      *limit = std::max<int64_t>(*limit, int64_t(x.id) + 1);
      t.added_by_id_[x.id] = t.added_.size();
      if (!x.content.empty()) {
        // Two passes as transformers makes them: tokens matched on the raw text (normalized
        // false, the default for special ones), then the others.
        const bool normalized = flag(a, "normalized", !x.special);
        const auto first = static_cast<unsigned char>(x.content[0]);
        t.added_first_[normalized][first].push_back(t.added_.size());
      }
      t.added_.push_back(std::move(x));
    }
    for (auto& pass : t.added_first_)
      for (auto& v : pass)  // longest first
        std::stable_sort(v.begin(), v.end(), [&](size_t p, size_t q) {
          return t.added_[p].content.size() > t.added_[q].content.size();
        });
  }

  // The id -> token map and the longest token, once the vocabulary and added tokens are read.
  void index_ids() {
    t.id_to_token_.reserve(t.vocab_.size());
    for (const auto& [tok, id] : t.vocab_) {
      t.id_to_token_[id] = tok;
      t.longest_ = std::max<int64_t>(t.longest_, int64_t(tok.size()));  // byte-level: >= its bytes
    }
    for (const Tokenizer::Added& a : t.added_)
      t.longest_ = std::max<int64_t>(t.longest_, int64_t(a.content.size()));
  }

  // Normalizer: none.
  void normalizer(const json& j) {
    if (is_absent(j, "normalizer")) return;
    const json& n = j["normalizer"];
    const bool empty_seq = type_of(n) == "Sequence" && n.contains("normalizers") &&
                           n["normalizers"].is_array() && n["normalizers"].empty();
    MO_REQUIRE(empty_seq, what, ": normalizer '", type_of(n),
               "' is not supported (modelone applies none)");
  }

  // Pre-tokenizer: [Sequence of] Split (DeepSeek's regexes) ... then ByteLevel.
  void pre_tokenizer(const json& j) {
    MO_REQUIRE(!is_absent(j, "pre_tokenizer"), what,
               ": no pre_tokenizer (modelone reads byte-level BPE, whose pre_tokenizer ends with "
               "ByteLevel)");
    const json& pre = j["pre_tokenizer"];
    std::vector<json> steps;
    if (type_of(pre) == "Sequence" && pre.contains("pretokenizers") &&
        pre["pretokenizers"].is_array())
      steps.assign(pre["pretokenizers"].begin(), pre["pretokenizers"].end());
    else
      steps.push_back(pre);
    std::string shape = type_of(pre);  // for the error: "Sequence of Split, Metaspace"
    if (type_of(pre) == "Sequence")
      for (size_t i = 0; i < steps.size(); ++i) shape += (i ? ", " : " of ") + type_of(steps[i]);
    MO_REQUIRE(!steps.empty() && type_of(steps.back()) == "ByteLevel", what, ": pre_tokenizer '",
               shape, "' is not supported (modelone reads DeepSeek's: a Sequence of Split then "
               "ByteLevel)");
    for (size_t i = 0; i < steps.size(); ++i) {
      const json& s = steps[i];
      const std::string st = type_of(s);
      if (st == "ByteLevel" && i + 1 == steps.size()) {
        MO_REQUIRE(!flag(s, "add_prefix_space", true) && !flag(s, "use_regex", true), what,
                   ": pre_tokenizer ByteLevel with add_prefix_space or use_regex is not supported "
                   "(DeepSeek's has neither)");
        continue;
      }
      MO_REQUIRE(st == "Split", what, ": pre_tokenizer '", st.empty() ? type_of(pre) : st,
                 "' is not supported (modelone reads DeepSeek's: a Sequence of Split then "
                 "ByteLevel)");
      MO_REQUIRE(s.value("behavior", std::string()) == "Isolated" && !flag(s, "invert", false),
                 what, ": pre_tokenizer Split with behavior '", s.value("behavior", std::string()),
                 "' is not supported (Isolated only)");
      const json& pat = s.contains("pattern") ? s["pattern"] : json();
      const std::string re = pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()
                                 ? pat["Regex"].get<std::string>() : std::string();
      SplitRule rule;
      MO_REQUIRE(split_rule_from_regex(re, &rule), what, ": pre_tokenizer Split pattern '",
                 printable(re), "' is not supported (modelone knows DeepSeek V3/V4's)");
      t.splits_.push_back(rule);
    }
  }

  // Post-processor: the special tokens of the `single` template (BOS), if any.
  void post_processor(const json& j) {
    std::vector<json> procs;
    if (!is_absent(j, "post_processor")) procs.push_back(j["post_processor"]);
    for (size_t i = 0; i < procs.size(); ++i) {  // grows as Sequences open
      const json p = procs[i];
      const std::string pt = type_of(p);
      if (pt == "Sequence" && p.contains("processors") && p["processors"].is_array()) {
        procs.insert(procs.end(), p["processors"].begin(), p["processors"].end());
        continue;
      }
      if (pt == "ByteLevel") continue;  // offsets only
      MO_REQUIRE(pt == "TemplateProcessing", what, ": post_processor '", pt,
                 "' is not supported (TemplateProcessing, ByteLevel or none)");
      bool after = false;
      for (const json& item : p.at("single")) {
        if (item.contains("Sequence")) {
          after = true;
          continue;
        }
        const std::string name = item.at("SpecialToken").at("id").get<std::string>();
        MO_REQUIRE(p.contains("special_tokens") && p["special_tokens"].contains(name), what,
                   ": post_processor names '", printable(name), "' but has no such special token");
        for (const json& id : p["special_tokens"][name].at("ids")) {
          (after ? t.suffix_ : t.prefix_).push_back(id.get<int32_t>());
          t.id_limit_ = std::max<int64_t>(t.id_limit_, int64_t(id.get<int32_t>()) + 1);
        }
      }
    }
  }
};

Tokenizer Tokenizer::parse(const std::string& text, const std::string& what) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(what, " is not valid JSON: ", e.what());
  }
  Tokenizer t;
  t.what_ = what;
  try {
    MO_REQUIRE(j.is_object(), what, ": not a tokenizer.json (the top level is not an object)");
    TokenizerParser p{t, what};
    int64_t limit = p.model(j);
    p.added_tokens(j, &limit);
    t.id_limit_ = limit;
    p.index_ids();
    p.normalizer(j);
    p.pre_tokenizer(j);
    p.post_processor(j);
    // Decoder: byte-level.
    if (!is_absent(j, "decoder"))
      MO_REQUIRE(type_of(j["decoder"]) == "ByteLevel", what, ": decoder '", type_of(j["decoder"]),
                 "' is not supported (ByteLevel or none)");
  } catch (const json::exception& e) {
    fail(what, ": unexpected JSON: ", e.what());
  }
  return t;
}

void Tokenizer::split_added(const std::string& text, bool normalized_pass,
                            std::vector<Span>* spans) const {
  const auto& first = added_first_[normalized_pass];
  std::vector<Span> out;
  for (const Span& sp : *spans) {
    if (sp.added >= 0) {
      out.push_back(sp);
      continue;
    }
    size_t plain = sp.b;  // start of the text not yet emitted
    for (size_t p = sp.b; p < sp.e;) {
      int hit = -1;
      for (size_t k : first[static_cast<unsigned char>(text[p])]) {  // longest first
        const std::string& c = added_[k].content;
        if (p + c.size() <= sp.e && text.compare(p, c.size(), c) == 0) {
          hit = int(k);
          break;
        }
      }
      if (hit < 0) {
        ++p;
        continue;
      }
      const Added& a = added_[size_t(hit)];
      // lstrip / rstrip: the white space beside the token goes with it.
      size_t b = p, e = p + a.content.size();
      if (a.lstrip)
        for (size_t n; b > plain && (n = space_before(text, b)) > 0;) b -= n;
      if (a.rstrip)
        for (size_t n; e < sp.e && (n = space_at(text, e)) > 0;) e += n;
      if (plain < b) out.push_back({plain, b, -1});
      out.push_back({b, e, hit});
      p = plain = e;
    }
    if (plain < sp.e) out.push_back({plain, sp.e, -1});
  }
  *spans = std::move(out);
}

std::vector<std::string> Tokenizer::pre_tokenize(const std::string& text) const {
  CodePoints cps;
  size_t bad = 0;
  MO_REQUIRE(decode_utf8(text, &cps, &bad), "the text is not valid UTF-8 (byte ", bad, ")");
  std::vector<std::string> out;
  for (auto [b, e] : split_pieces(cps.cp, splits_))
    out.push_back(text.substr(cps.at[b], cps.at[e] - cps.at[b]));
  return out;
}

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
  CodePoints cps;
  size_t bad = 0;
  MO_REQUIRE(decode_utf8(text, &cps, &bad), "the text is not valid UTF-8 (byte ", bad, ")");
  std::vector<Span> spans;
  if (!text.empty()) spans.push_back({0, text.size(), -1});
  split_added(text, false, &spans);
  split_added(text, true, &spans);
  std::vector<int32_t> ids = prefix_;
  for (const Span& sp : spans) {
    if (sp.added >= 0) {
      ids.push_back(added_[size_t(sp.added)].id);
      continue;
    }
    for (const std::string& piece : pre_tokenize(text.substr(sp.b, sp.e - sp.b))) bpe(piece, &ids);
  }
  ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  return ids;
}

// Merges by rank within the piece: always the lowest-ranked adjacent pair next, the leftmost of
// equal ones (a merge made early can take a character a later-ranked pair on its left wanted).
void Tokenizer::bpe(const std::string& piece, std::vector<int32_t>* out) const {
  const ByteMap& bm = byte_map();
  if (ignore_merges_) {  // a piece that is a whole token stays one
    std::string mapped;
    for (unsigned char c : piece) mapped += bm.to_char[c];
    if (auto it = vocab_.find(mapped); it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  const int n = int(piece.size());
  const size_t un = piece.size();
  std::vector<int32_t> id(un);
  std::vector<int> prev(un), next(un);
  for (int i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(piece[size_t(i)]);
    auto it = vocab_.find(bm.to_char[c]);
    if (it == vocab_.end()) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", c);
      fail(what_, " has no token for byte ", hex, " of '", printable(piece),
           "' (byte-level BPE has no unknown token)");
    }
    id[size_t(i)] = it->second;
    prev[size_t(i)] = i - 1;
    next[size_t(i)] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    int32_t rank;
    int pos;
    int32_t left, right;  // the pair's ids when queued: a stale entry no longer matches
  };
  auto later = [](const Cand& a, const Cand& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::priority_queue<Cand, std::vector<Cand>, decltype(later)> heap(later);
  auto queue = [&](int i) {
    const int j = i >= 0 ? next[size_t(i)] : -1;
    if (j < 0) return;
    auto it = merges_.find(pair_key(id[size_t(i)], id[size_t(j)]));
    if (it != merges_.end()) heap.push({it->second.rank, i, id[size_t(i)], id[size_t(j)]});
  };
  for (int i = 0; i < n; ++i) queue(i);
  std::vector<bool> alive(un, true);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    const int i = c.pos, j = next[size_t(i)];
    if (!alive[size_t(i)] || j < 0 || id[size_t(i)] != c.left || id[size_t(j)] != c.right) continue;
    id[size_t(i)] = merges_.at(pair_key(c.left, c.right)).id;
    alive[size_t(j)] = false;
    next[size_t(i)] = next[size_t(j)];
    if (next[size_t(j)] >= 0) prev[size_t(next[size_t(j)])] = i;
    queue(prev[size_t(i)]);
    queue(i);
  }
  // The first symbol never dies (a merge keeps its left side), so the chain starts at 0.
  if (n > 0)
    for (int i = 0; i >= 0; i = next[size_t(i)]) out->push_back(id[size_t(i)]);
}

std::string Tokenizer::token_bytes(int32_t id, bool skip_special) const {
  if (auto it = added_by_id_.find(id); it != added_by_id_.end()) {
    const Added& a = added_[it->second];
    return skip_special && a.special ? std::string() : a.content;
  }
  const auto found = id_to_token_.find(id);
  if (found == id_to_token_.end()) return "";
  const std::string& tok = found->second;
  CodePoints cps;
  size_t bad = 0;
  if (!decode_utf8(tok, &cps, &bad)) return tok;
  std::string out;
  const ByteMap& bm = byte_map();
  for (uint32_t c : cps.cp) {
    // A character outside the byte map stands for itself, as in transformers' ByteLevel decoder.
    if (c < bm.to_byte.size() && bm.to_byte[c] >= 0) out += char(bm.to_byte[c]);
    else out += utf8_of(c);
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) bytes += token_bytes(id, skip_special);
  return utf8_lossy(bytes);
}

std::string TextStream::push(int32_t id) {
  pending_ += t_.token_bytes(id, skip_);
  std::string tail;
  std::string out = utf8_lossy(pending_, &tail);
  pending_ = std::move(tail);
  return out;
}

std::string TextStream::finish() {
  std::string out = utf8_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace modelone
