// model/text/tokenizer.h on a small byte-level BPE tokenizer.json written here: the 256 byte tokens
// (id = byte value) and a few merges, with expected ids worked out by hand from the merge ranks.
// The pre-tokenizer cases were checked once against Hugging Face tokenizers 0.22 (the Rust
// library), on the same file.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/text/tokenizer.h"
#include "tests/support.h"
#include "tests/tokenizer_json.h"

namespace modelone::test {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

Tokenizer make(const json& j) { return Tokenizer::parse(j.dump(), "test/tokenizer.json"); }

TEST(Tokenizer, MergesApplyByRank) {
  const Tokenizer t = make(make_json());
  // "hello": (h,e) rank 0 -> he l l o; (l,l) 1 -> he ll o; (he,ll) 2 -> hell o.
  EXPECT_EQ(t.encode("hello"), (Ids{258, 'o'}));
  // "ell": pairs (e,l) rank 5 and (l,l) rank 1: rank order merges ll first, leaving e + ll,
  // where merging left to right (or the highest rank first) would give el + l = {261, 'l'}.
  EXPECT_EQ(t.encode("ell"), (Ids{'e', 257}));
  // " well": (l,l) 1 then (Ġ,w) 3 -> Ġw e ll; (e,l) 5 lost its l to ll.
  EXPECT_EQ(t.encode(" well"), (Ids{259, 'e', 257}));
  // " world": (Ġ,w) 3 -> Ġw o r l d; (o,r) 4 -> Ġw or l d; (Ġw,or) 6 -> Ġwor l d.
  EXPECT_EQ(t.encode("hello world"), (Ids{258, 'o', 262, 'l', 'd'}));
  // Merges written as [a, b] pairs read the same as "a b" strings.
  const Tokenizer p = make(make_json(/*pair_merges=*/true));
  for (const char* s : {"hello", "ell", " well", "hello world", "12345"})
    EXPECT_EQ(p.encode(s), t.encode(s)) << s;
}

TEST(Tokenizer, PreTokenizerSplits) {
  const Tokenizer t = make(make_json());
  using V = std::vector<std::string>;
  EXPECT_EQ(t.pre_tokenize("x.Hello, world!!\n\nok  "),
            (V{"x", ".Hello", ",", " world", "!!\n\n", "ok", "  "}));
  EXPECT_EQ(t.pre_tokenize("a  b"), (V{"a", " ", " b"}));
  EXPECT_EQ(t.pre_tokenize("a \n b"), (V{"a", " \n", " b"}));
  EXPECT_EQ(t.pre_tokenize("don't"), (V{"don", "'t"}));
  EXPECT_EQ(t.pre_tokenize("(x) [y]"), (V{"(x", ")", " [", "y", "]"}));
  EXPECT_EQ(t.pre_tokenize("a\tb\r\nc"), (V{"a", "\tb", "\r\n", "c"}));
  EXPECT_EQ(t.pre_tokenize("12345abc"), (V{"123", "45", "abc"}));
  EXPECT_EQ(t.pre_tokenize("$100"), (V{"$", "100"}));
  // CJK ideographs and kana are split off as a run; other letters join the word.
  EXPECT_EQ(t.pre_tokenize("你好world"), (V{"你好", "world"}));
  EXPECT_EQ(t.pre_tokenize(" 你好"), (V{" ", "你好"}));
  EXPECT_EQ(t.pre_tokenize("日本語テキスト"), (V{"日本語テキスト"}));
  EXPECT_EQ(t.pre_tokenize(" café"), (V{" café"}));
  EXPECT_EQ(t.pre_tokenize("e\u0301"), (V{"e\u0301"}));  // a combining mark stays on its letter
  EXPECT_EQ(t.pre_tokenize("\u2014\u2014x"), (V{"\u2014\u2014", "x"}));
}

TEST(Tokenizer, DigitsSpacesPunctuation) {
  const Tokenizer t = make(make_json());
  // Digits go in groups of three before any merge: "123" "45" -> (1,2) 7, (12,3) 8.
  EXPECT_EQ(t.encode("12345"), (Ids{264, '4', '5'}));
  // "41234" -> "412" "34": (1,2) 7 -> 4 12. Ungrouped it would be 4 123 4.
  EXPECT_EQ(t.encode("41234"), (Ids{'4', 263, '3', '4'}));
  // "hello" "," " world" "!".
  EXPECT_EQ(t.encode("hello, world!"), (Ids{258, 'o', ',', 262, 'l', 'd', '!'}));
  // Two spaces before a word: " " alone (byte 32 is 'Ġ'), then " wor": (Ġ,w) 3, (o,r) 4,
  // (Ġw,or) 6.
  EXPECT_EQ(t.encode("a  wor"), (Ids{'a', ' ', 262}));
  EXPECT_EQ(t.encode("x\n\n"), (Ids{'x', '\n', '\n'}));
}

TEST(Tokenizer, AddedTokensAndUtf8) {
  const Tokenizer t = make(make_json());
  // "there": (h,e) 0 -> t he r e.
  EXPECT_EQ(t.encode("hi<|eot|>there"), (Ids{'h', 'i', 300, 't', 256, 'r', 'e'}));
  EXPECT_EQ(t.encode("<|eot|><|eot|>"), (Ids{300, 300}));
  EXPECT_EQ(t.encode("a<|e"), (Ids{'a', 301}));  // the longest added token that matches
  // Non-ASCII: é is bytes C3 A9, one byte token each.
  EXPECT_EQ(t.encode("é"), (Ids{0xC3, 0xA9}));
  EXPECT_EQ(t.encode(" é"), (Ids{' ', 0xC3, 0xA9}));
  EXPECT_EQ(t.encode(""), Ids{});
  for (const std::string s : {"hello world", "héllo, wörld! 12345", "你好 <|eot|> x\n",
                              " \t\r\n", "emoji \xF0\x9F\x98\x80!"})
    EXPECT_EQ(t.decode(t.encode(s)), s) << s;
  EXPECT_EQ(t.decode(t.encode("a<|eot|>b"), /*skip_special=*/true), "ab");
  EXPECT_EQ(t.decode({0xC3}), "\xEF\xBF\xBD");  // an unfinished character: U+FFFD
  EXPECT_EQ(t.decode({259, 99999}), " w");      // an id the file does not know: nothing
  EXPECT_EQ(t.id_limit(), 302);
}

TEST(Tokenizer, StreamingHoldsSplitCharacters) {
  const Tokenizer t = make(make_json());
  TextStream s(t);
  EXPECT_EQ(s.push(258), "hell");
  EXPECT_EQ(s.push(0xC3), "");  // the first byte of é waits for the second
  EXPECT_EQ(s.push(0xA9), "\xC3\xA9");
  EXPECT_EQ(s.push(300), "");  // special: skipped in streamed text
  EXPECT_EQ(s.push(0xE4), "");  // 你 = E4 BD A0 over three tokens
  EXPECT_EQ(s.push(0xBD), "");
  EXPECT_EQ(s.push(0xA0), "\xE4\xBD\xA0");
  EXPECT_EQ(s.push(0xE4), "");
  EXPECT_EQ(s.finish(), "\xEF\xBF\xBD");  // cut short: U+FFFD, as transformers' decode
  EXPECT_EQ(s.push(0xA9), "\xEF\xBF\xBD");  // a stray continuation byte
  EXPECT_EQ(s.push('o'), "o");
}

TEST(Tokenizer, TemplateBosAndIgnoreMerges) {
  json j = make_json();
  j["added_tokens"].push_back(added(302, "<|bos|>", true));
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<|bos|>"}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens",
       {{"<|bos|>", {{"id", "<|bos|>"}, {"ids", {302}}, {"tokens", {"<|bos|>"}}}}}}};
  Tokenizer t = make(j);
  EXPECT_EQ(t.encode("hello"), (Ids{302, 258, 'o'}));
  EXPECT_EQ(t.prefix_ids(), Ids{302});
  // ignore_merges: a piece that is a whole vocab token is taken as it is.
  j["model"]["vocab"]["Ġworld"] = 310;
  EXPECT_EQ(make(j).encode(" world"), (Ids{302, 262, 'l', 'd'}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(make(j).encode(" world"), (Ids{302, 310}));
}

TEST(Tokenizer, Errors) {
  auto err = [](const std::string& text) {
    return error_of([&] { Tokenizer::parse(text, "m/tokenizer.json"); });
  };
  EXPECT_NE(err("{\"model\": ").find("m/tokenizer.json is not valid JSON"), std::string::npos);
  json j = make_json();
  j["model"].erase("vocab");
  EXPECT_NE(err(j.dump()).find("model.vocab is missing"), std::string::npos) << err(j.dump());
  j = make_json();
  j["model"]["type"] = "WordPiece";
  EXPECT_NE(err(j.dump()).find("model type 'WordPiece' is not supported"), std::string::npos);
  j = make_json();
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}};
  EXPECT_NE(err(j.dump()).find("m/tokenizer.json: pre_tokenizer 'Metaspace' is not supported"),
            std::string::npos) << err(j.dump());
  j = make_json();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\d+";
  EXPECT_NE(err(j.dump()).find("Split pattern '\\d+' is not supported"), std::string::npos);
  j = make_json();
  j["pre_tokenizer"]["pretokenizers"][3]["use_regex"] = true;
  EXPECT_NE(err(j.dump()).find("use_regex"), std::string::npos);
  j = make_json();
  j["normalizer"] = {{"type", "NFC"}};
  EXPECT_NE(err(j.dump()).find("normalizer 'NFC' is not supported"), std::string::npos);
  j = make_json();
  j["model"]["merges"].push_back("q z");  // "qz" is not in the vocab
  EXPECT_NE(err(j.dump()).find("merge 9: 'qz' is not in model.vocab"), std::string::npos);
  j = make_json();
  j["model"]["vocab"]["h"] = "104";
  EXPECT_NE(err(j.dump()).find("model.vocab['h'] is not a token id"), std::string::npos);
  EXPECT_NE(err("[1, 2]").find("not a tokenizer.json"), std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::load("/nonexistent/tokenizer.json"); }).find("cannot open"),
            std::string::npos);

  // Encoding: a byte with no token (byte-level BPE has no unknown token), invalid UTF-8.
  j = make_json();
  j["model"]["vocab"].erase("q");
  const Tokenizer t = make(j);
  EXPECT_NE(error_of([&] { t.encode("a quit"); }).find("has no token for byte 0x71 of ' quit'"),
            std::string::npos) << error_of([&] { t.encode("a quit"); });
  EXPECT_NE(error_of([&] { t.encode("ok \xFF"); }).find("not valid UTF-8 (byte 3)"),
            std::string::npos);
}

}  // namespace
}  // namespace modelone::test
