// The SentencePiece-style BPE tokenizer (src/tokenizer/spm*.cpp) through its three loaders:
//  * ids against independent references: the `tokenizers` library on TinyLlama's tokenizer.json
//    and `sentencepiece` on its tokenizer.model over the ~2,200-string reference corpus
//    (tests/fixtures/tokenizer/*.ids.gz), and sentencepiece run on llama.cpp's Baichuan GGUF
//    vocabulary and on TinyLlama's model for the llama.cpp test inputs
//    (tests/fixtures/spm/expected.json, made by tools/make_spm_fixture.py);
//  * a GGUF built in memory from tokenizer.model (llama.cpp's path) against the same references;
//  * the JSON merge list against the score-derived merges; BOS/EOS and special tokens; decode
//    as HF does it; round trips including invalid UTF-8; a 100 KB word in well under a second;
//  * malformed inputs: a .model truncated at every byte, corrupt wire data, bad JSON and GGUF
//    vocabularies must all be a billion::Error naming the file.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <unistd.h>

#include "core/error.h"
#include "core/gzip.h"
#include "core/mapped_file.h"
#include "core/utf8.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/hf_folder.h"
#include "tokenizer/sentencepiece_model.h"
#include "tokenizer/spm.h"
#include "tokenizer_corpus.h"

namespace fs = std::filesystem;
using namespace billion;

namespace {

const std::string kShared = BILLION_SHARED_DIR;
const std::string kFixtures = BILLION_FIXTURES_DIR;
const std::string kTiny = kShared + "/models/tinyllama";
const std::string kVocabDir = kShared + "/tokenizers/llama.cpp-vocab";

using Ids = std::vector<TokenId>;

EncodeOptions plain() { return {.add_special = false, .parse_special = false}; }

std::string ids_text(const Ids& ids, size_t max_ids = 40) {
  std::string s = "[";
  for (size_t k = 0; k < ids.size() && k < max_ids; ++k) s += (k ? " " : "") + std::to_string(ids[k]);
  if (ids.size() > max_ids) s += fmt::format(" ... ({} ids)", ids.size());
  return s + "]";
}

// Loaded once per process: the corpus tests reuse them.
const Tokenizer& tiny_json() {
  static auto t = load_spm_from_hf_json(read_json_file(kTiny + "/tokenizer.json"), kTiny);
  return *t;
}
const Tokenizer& tiny_model() {
  static auto t = load_spm_from_model_file(kTiny + "/tokenizer.model", kTiny);
  return *t;
}

// A GGUF vocabulary (tokenizer.ggml.*) written from a tokenizer.model, as llama.cpp's converter
// does for Llama-2: tokens, scores, token types, special ids.
std::vector<uint8_t> gguf_from_model(const SentencePieceModel& sp) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "llama");
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (const auto& p : sp.pieces) {
    tokens.push_back(p.piece);
    scores.push_back(p.score);
    types.push_back(p.type);
  }
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_f32_array("tokenizer.ggml.scores", scores);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  return w.to_bytes();
}

const Tokenizer& tiny_gguf() {
  static const std::vector<uint8_t> bytes = gguf_from_model(read_sentencepiece_model(kTiny + "/tokenizer.model"));
  static auto file = GgufFile::from_memory(bytes, "tinyllama-vocab.gguf");
  static auto t = load_spm_from_gguf(*file);
  return *t;
}

const Tokenizer& baichuan() {
  static GgufFile file(kVocabDir + "/ggml-vocab-baichuan.gguf");
  static auto t = load_spm_from_gguf(file);
  return *t;
}

const nlohmann::json& expected_doc() {
  static const auto doc = read_json_file(kFixtures + "/spm/expected.json");
  return doc;
}

// The llama.cpp test inputs: texts separated by "\n__ggml_vocab_test__\n", nothing after the last.
std::vector<std::string> llama_cpp_inputs() {
  const std::string all = read_text_file(kVocabDir + "/ggml-vocab-starcoder.gguf.inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t at; (at = all.find(sep, start)) != std::string::npos; start = at + sep.size()) out.push_back(all.substr(start, at - start));
  EXPECT_EQ(start, all.size()) << "text after the last separator";
  return out;
}

void expect_rows(const Tokenizer& tok, const std::vector<std::string>& texts, const nlohmann::json& rows,
                 const std::string& label) {
  ASSERT_EQ(rows.size(), texts.size()) << label;
  size_t bad = 0;
  for (size_t k = 0; k < texts.size(); ++k) {
    const Ids want = rows[k].get<Ids>();
    const Ids got = tok.encode(texts[k], plain());
    if (got != want && ++bad <= 5) {
      ADD_FAILURE() << label << " #" << k << " " << printable(texts[k], 120) << "\n  expected " << ids_text(want)
                    << "\n  got      " << ids_text(got);
    }
  }
  EXPECT_EQ(bad, 0u) << label;
}

// ---- the reference corpus (shared with test_tokenizer_reference) ------------------------------

struct ExpectedLine {
  std::string hash;
  bool has_ids = true;
  Ids ids;
};

std::vector<ExpectedLine> read_expected(const std::string& path) {
  std::istringstream in(read_gzip_file(path));
  std::vector<ExpectedLine> out;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    ExpectedLine e;
    fields >> e.hash;
    for (std::string tok; fields >> tok;) {
      if (tok == "-") {
        e.has_ids = false;
        break;
      }
      e.ids.push_back(static_cast<TokenId>(std::stol(tok)));
    }
    out.push_back(std::move(e));
  }
  return out;
}

void check_corpus(const Tokenizer& tok, const std::string& fixture, bool parse_special, const std::string& label) {
  static const auto corpus = test::build_tokenizer_corpus(kShared, kFixtures);
  const auto expected = read_expected(kFixtures + "/tokenizer/" + fixture + ".ids.gz");
  ASSERT_EQ(expected.size(), corpus.size()) << "fixture and corpus disagree (rerun tools/make_tokenizer_refs.py)";
  const EncodeOptions options{.add_special = false, .parse_special = parse_special};
  size_t bad = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    ASSERT_EQ(expected[i].hash, test::fnv1a64_hex(corpus[i].bytes)) << "corpus drift at " << corpus[i].name;
    const Ids got = tok.encode(corpus[i].bytes, options);
    for (TokenId id : got) ASSERT_LT(static_cast<size_t>(id), tok.vocab_size());
    // Every string round-trips when encoded plainly, invalid UTF-8 included (byte fallback keeps
    // the raw bytes) and leading spaces too (the dummy prefix is unconditional, so " x" is
    // "▁▁x" and decode strips just one space). Not round-tripping: a literal "▁" (it means a
    // space), and parsed special tokens (the text after them gets a prefix space of its own).
    if (corpus[i].bytes.find("\xe2\x96\x81") == std::string::npos) {
      const std::string back = tok.decode(parse_special ? tok.encode(corpus[i].bytes, plain()) : got);
      EXPECT_EQ(back, corpus[i].bytes) << label << ": " << corpus[i].name << " does not round-trip";
    }
    if (!expected[i].has_ids) continue;
    if (got != expected[i].ids && ++bad <= 5) {
      ADD_FAILURE() << label << " #" << i << " " << corpus[i].name << " " << printable(corpus[i].bytes, 120)
                    << "\n  expected " << ids_text(expected[i].ids) << "\n  got      " << ids_text(got);
    }
  }
  EXPECT_EQ(bad, 0u) << label << ": strings differing from " << fixture;
}

TEST(SpmCorpus, TinyLlamaJsonMatchesTokenizersLibrary) { check_corpus(tiny_json(), "tinyllama.hf", true, "tokenizer.json"); }

TEST(SpmCorpus, TinyLlamaModelMatchesSentencepiece) { check_corpus(tiny_model(), "tinyllama.spm", false, "tokenizer.model"); }

TEST(SpmCorpus, GgufFromTinyLlamaModelMatchesSentencepiece) { check_corpus(tiny_gguf(), "tinyllama.spm", false, "gguf"); }

// ---- llama.cpp test inputs ------------------------------------------------------------------

TEST(SpmLlamaCpp, BaichuanGgufMatchesReferenceOnVocabTestInputs) {
  EXPECT_EQ(llama_cpp_inputs().size(), 46u);
  expect_rows(baichuan(), llama_cpp_inputs(), expected_doc().at("baichuan_gguf").at("inp"), "baichuan .inp");
  expect_rows(baichuan(), expected_doc().at("texts").get<std::vector<std::string>>(),
              expected_doc().at("baichuan_gguf").at("texts"), "baichuan texts");
}

TEST(SpmLlamaCpp, TinyLlamaAllLoadersMatchOnVocabTestInputs) {
  const auto inputs = llama_cpp_inputs();
  const auto texts = expected_doc().at("texts").get<std::vector<std::string>>();
  for (const Tokenizer* tok : {&tiny_json(), &tiny_model(), &tiny_gguf()}) {
    expect_rows(*tok, inputs, expected_doc().at("tinyllama_model").at("inp"), "tinyllama .inp");
    expect_rows(*tok, texts, expected_doc().at("tinyllama_model").at("texts"), "tinyllama texts");
  }
}

TEST(SpmLlamaCpp, BaichuanGgufSettings) {
  const Tokenizer& t = baichuan();
  EXPECT_EQ(t.kind(), "spm");
  EXPECT_EQ(t.vocab_size(), 64000u);
  EXPECT_EQ(t.special_tokens().bos, 1);
  EXPECT_EQ(t.special_tokens().eos, 2);
  EXPECT_EQ(t.special_tokens().unk, 0);
  EXPECT_TRUE(t.special_tokens().add_bos);
  EXPECT_FALSE(t.special_tokens().add_eos);
  const Ids ids = t.encode("北京是中国的首都。");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(t.decode(ids, true), "北京是中国的首都。");
}

// ---- the three sources agree -----------------------------------------------------------------

TEST(SpmLoaders, JsonMergesAgreeWithModelScores) {
  auto json_tok = load_spm_from_hf_json(read_json_file(kTiny + "/tokenizer.json"), kTiny);
  auto model_tok = load_spm_from_model_file(kTiny + "/tokenizer.model", kTiny);
  const auto& j = dynamic_cast<const SpmTokenizer&>(*json_tok);
  const auto& m = dynamic_cast<const SpmTokenizer&>(*model_tok);
  ASSERT_EQ(j.vocab_size(), m.vocab_size());
  for (TokenId id = 0; id < static_cast<TokenId>(j.vocab_size()); ++id) {
    ASSERT_EQ(j.token_text(id), m.token_text(id)) << id;
    ASSERT_EQ(j.token_kind(id), m.token_kind(id)) << id;
    ASSERT_EQ(j.token_bytes(id), m.token_bytes(id)) << id;
  }
  const auto jr = j.merge_rules();
  const auto mr = m.merge_rules();
  // The same (left, right) → merged rules...
  std::set<std::tuple<TokenId, TokenId, TokenId>> js, ms;
  for (const auto& r : jr) js.insert({r.left, r.right, r.merged});
  for (const auto& r : mr) ms.insert({r.left, r.right, r.merged});
  EXPECT_EQ(jr.size(), 61249u);
  EXPECT_EQ(js, ms);
  // ...in the same order: along the JSON ranks the merged piece's score never increases, and
  // the score ranks never contradict the JSON ranks.
  std::map<std::pair<TokenId, TokenId>, int32_t> score_rank;
  for (const auto& r : mr) score_rank[{r.left, r.right}] = r.rank;
  int32_t previous = -1;
  for (const auto& r : jr) {
    const int32_t s = score_rank.at({r.left, r.right});
    ASSERT_GE(s, previous) << "JSON merge rank " << r.rank << " (" << j.token_text(r.merged) << ")";
    previous = s;
  }
}

TEST(SpmLoaders, Llama2ChatFolderEqualsTinyLlama) {
  const std::string folder = kShared + "/models/llama2-7b-chat";
  auto tok = load_spm_from_hf_json(read_json_file(folder + "/tokenizer.json"), folder);
  for (const char* s : {"[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]", "Hello world", "  x"})
    EXPECT_EQ(tok->encode(s), tiny_json().encode(s)) << s;
  EXPECT_TRUE(tok->special_tokens().add_bos);
  EXPECT_FALSE(tok->special_tokens().add_eos);
}

// ---- BOS/EOS, special tokens, decode ---------------------------------------------------------

TEST(SpmBehaviour, BosAndSpecialTokens) {
  // Expected ids from the tokenizers library on tokenizer.json (and sentencepiece for plain text).
  for (const Tokenizer* t : {&tiny_json(), &tiny_model(), &tiny_gguf()}) {
    EXPECT_EQ(t->encode("Hello world"), (Ids{1, 15043, 3186}));
    EXPECT_EQ(t->encode("Hello world", plain()), (Ids{15043, 3186}));
    EXPECT_EQ(t->encode(" Hello"), (Ids{1, 29871, 15043}));  // dummy prefix even before a space
    EXPECT_EQ(t->encode(""), (Ids{1}));
    EXPECT_EQ(t->encode("", plain()), Ids{});
    // Special-token text is plain text unless parse_special.
    EXPECT_EQ(t->encode("<s>Hello", plain()), (Ids{529, 29879, 29958, 10994}));
    EXPECT_EQ(t->encode("</s>", plain()), (Ids{1533, 29879, 29958}));
    // Parsed: the token, and a dummy prefix again for the text after it (tokenizer.json's
    // Prepend normalizer runs on every stretch; llama.cpp does the same).
    EXPECT_EQ(t->encode("<s>Hello", {.add_special = true, .parse_special = true}), (Ids{1, 1, 15043}));
    EXPECT_EQ(t->encode("Hello </s> world", {.add_special = false, .parse_special = true}),
              (Ids{15043, 29871, 2, 29871, 3186}));
    EXPECT_EQ(t->encode("<unk>x", {.add_special = false, .parse_special = true}), (Ids{0, 921}));
    EXPECT_EQ(t->token_kind(0), TokenKind::Unknown);
    EXPECT_EQ(t->token_kind(1), TokenKind::Control);
    EXPECT_EQ(t->token_kind(3), TokenKind::Byte);
    EXPECT_EQ(t->token_kind(15043), TokenKind::Normal);
    EXPECT_EQ(t->token_id("▁Hello"), 15043);
    EXPECT_EQ(t->token_id("no such token"), std::nullopt);
    EXPECT_EQ(t->token_text(15043), "▁Hello");
    EXPECT_EQ(t->token_bytes(15043), " Hello");
    EXPECT_EQ(t->token_bytes(13), "\n");  // <0x0A>
    EXPECT_THROW(t->token_text(32000), Error);
    EXPECT_THROW(t->decode({-1}), Error);
  }
}

TEST(SpmBehaviour, DecodeLikeHuggingFace) {
  // Values from transformers' LlamaTokenizer decode on this vocabulary.
  const Tokenizer& t = tiny_json();
  EXPECT_EQ(t.decode({1, 15043, 2}), "<s> Hello</s>");
  EXPECT_EQ(t.decode({1, 15043, 2}, true), "Hello");
  EXPECT_EQ(t.decode({0, 15043, 29871}), "<unk> Hello ");
  EXPECT_EQ(t.decode({29871, 29871, 15043}, true), "  Hello");
  EXPECT_EQ(t.decode({1, 15043, 3186}, true), "Hello world");
  EXPECT_EQ(t.decode({29871, 243, 162, 155, 131}), "😀");
  // Incomplete UTF-8 comes back as raw bytes (HF would show U+FFFD; StreamingDecoder does that).
  EXPECT_EQ(t.decode({243, 162}), "\xf0\x9f");
}

TEST(SpmBehaviour, ByteFallbackAndRoundTrip) {
  const std::vector<std::string> texts = {
      "😀 日本語", "emoji 👨‍👩‍👧 flags 🇯🇵", "Ω≈ç√∫", "\xff", "a\xc3", "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80",
      " leading", "trailing ", "  two  spaces  ", "\n\t\r", "<s></s><unk>", std::string("nul\0byte", 8)};
  for (const Tokenizer* t : {&tiny_json(), &tiny_model(), &tiny_gguf(), &baichuan()}) {
    for (const auto& s : texts) {
      const Ids ids = t->encode(s, plain());
      EXPECT_EQ(t->decode(ids), s) << printable(s);
      for (TokenId id : ids) EXPECT_NE(id, *t->special_tokens().unk) << "unknown token for " << printable(s);
    }
  }
  // A literal "▁" is a space to SentencePiece (it decodes as one).
  EXPECT_EQ(tiny_json().encode("▁literal", plain()), tiny_json().encode(" literal", plain()));
  EXPECT_EQ(tiny_json().encode("😀", plain()), (Ids{29871, 243, 162, 155, 131}));
  EXPECT_EQ(tiny_json().encode("\xff", plain()), (Ids{29871, 258}));  // <0xFF>
  EXPECT_EQ(tiny_model().encode("a\xff" "b", plain()), tiny_gguf().encode("a\xff" "b", plain()));
}

TEST(SpmBehaviour, LongWordIsNotQuadratic) {
  std::mt19937 rng(7);
  std::string random_word;
  for (int k = 0; k < 100000; ++k) random_word += static_cast<char>('a' + rng() % 26);
  const std::string same(100000, 'x');
  std::string cjk;
  while (cjk.size() < 100000) cjk += "中文字符";
  for (const Tokenizer* t : {&tiny_json(), &tiny_model(), &baichuan()}) {
    for (const std::string* s : std::initializer_list<const std::string*>{&random_word, &same, &cjk}) {
      const auto start = std::chrono::steady_clock::now();
      const Ids ids = t->encode(*s, plain());
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      EXPECT_LT(ms, 500.0) << s->size() << "-byte word took " << ms << " ms";
      EXPECT_EQ(t->decode(ids), *s);
    }
  }
}

// ---- malformed input -------------------------------------------------------------------------

// Protobuf writing for the hand-made test model.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void put_key(std::string& out, uint32_t field, uint32_t wire) { put_varint(out, (uint64_t{field} << 3) | wire); }
void put_bytes(std::string& out, uint32_t field, const std::string& s) {
  put_key(out, field, 2);
  put_varint(out, s.size());
  out += s;
}
void put_int(std::string& out, uint32_t field, int64_t v) {
  put_key(out, field, 0);
  put_varint(out, static_cast<uint64_t>(v));
}
void put_float(std::string& out, uint32_t field, float f) {
  put_key(out, field, 5);
  char b[4];
  std::memcpy(b, &f, 4);
  out.append(b, 4);
}

// A tiny BPE model: pieces, then the normalizer, then the trainer spec with model_type last, so
// that every strict prefix of the file lacks something required (a complete field sequence
// that stops early is valid protobuf, so "truncated" must be caught by the loader's checks).
std::string tiny_model_bytes(bool byte_fallback = true) {
  struct P {
    const char* text;
    float score;
    int type;
  };
  std::vector<P> pieces = {{"<unk>", 0, 2}, {"<s>", 0, 3}, {"</s>", 0, 3}, {"<0x21>", 0, 6}, {"\xe2\x96\x81", -1, 1},
                           {"a", -2, 1},     {"b", -3, 1},  {"\xe2\x96\x81" "a", -4, 1},     {"ab", -5, 1},
                           {"\xe2\x96\x81" "ab", -6, 1}, {"<br>", 0, 4}};
  std::string out;
  for (const auto& p : pieces) {
    std::string sp;
    put_bytes(sp, 1, p.text);
    put_float(sp, 2, p.score);
    put_int(sp, 3, p.type);
    put_bytes(out, 1, sp);
  }
  std::string normalizer;
  put_bytes(normalizer, 1, "identity");
  put_int(normalizer, 3, 1);
  put_int(normalizer, 4, 0);
  put_bytes(out, 3, normalizer);
  std::string trainer;
  put_int(trainer, 35, byte_fallback ? 1 : 0);
  put_int(trainer, 40, 0);
  put_int(trainer, 43, -1);  // ten-byte varint
  put_int(trainer, 3, 2);    // BPE, last
  put_bytes(out, 2, trainer);
  return out;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("billion_spm_test_{}", static_cast<long>(::getpid()));
  TempDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string p = (path / name).string();
    std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p;
  }
};

TEST(SpmMalformed, HandMadeModelWorks) {
  TempDir dir;
  auto t = load_spm_from_model_file(dir.write("tiny.model", tiny_model_bytes()), "");
  EXPECT_EQ(t->vocab_size(), 11u);
  EXPECT_EQ(t->encode("ab ab!", plain()), (Ids{9, 9, 3}));  // ▁ab ▁ab <0x21>
  // User-defined pieces are matched even without parse_special, and (as in sentencepiece) the
  // text after them gets no second dummy prefix.
  EXPECT_EQ(t->encode("a<br>b", plain()), (Ids{7, 10, 6}));
  EXPECT_EQ(t->encode("ab"), (Ids{1, 9}));
  // No byte fallback: unknown characters become one fused <unk>.
  auto u = load_spm_from_model_file(dir.write("nofallback.model", tiny_model_bytes(false)), "");
  EXPECT_EQ(u->encode("a!!c", plain()), (Ids{7, 0}));
}

TEST(SpmMalformed, TruncatedModelIsAnErrorAtEveryByte) {
  TempDir dir;
  const std::string full = tiny_model_bytes();
  for (size_t n = 0; n < full.size(); ++n) {
    const std::string path = dir.write(fmt::format("cut{}.model", n), full.substr(0, n));
    try {
      load_spm_from_model_file(path, "");
      ADD_FAILURE() << "no error for the first " << n << " of " << full.size() << " bytes";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    fs::remove(path);
  }
}

TEST(SpmMalformed, CorruptWireDataIsAnError) {
  TempDir dir;
  const std::string good = tiny_model_bytes();
  std::vector<std::string> bad = {
      std::string("\x0a\xff\xff\xff\xff\x0f", 6),                          // length far past the end
      std::string("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12),  // varint over 10 bytes
      std::string("\x0b", 1),                                               // group wire type
      std::string("\x00\x01", 2),                                           // field number 0
      std::string("\x0d\x01\x02", 3),                                       // truncated fixed32
      good + std::string("\x0a\x03\x18\x63\x00", 5),                        // piece with type 99 (after trainer)
      std::string("\x0a\x02\x10\x00", 4) + good.substr(0),                  // score with varint wire type
  };
  for (size_t k = 0; k < bad.size(); ++k) {
    const std::string path = dir.write(fmt::format("bad{}.model", k), bad[k]);
    try {
      load_spm_from_model_file(path, "");
      ADD_FAILURE() << "no error for corruption " << k;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  // Random byte flips never crash (an Error or a working tokenizer are both fine).
  std::mt19937 rng(1);
  for (int round = 0; round < 2000; ++round) {
    std::string s = good;
    for (int f = 0; f < 3; ++f) s[rng() % s.size()] = static_cast<char>(rng());
    try {
      auto t = parse_sentencepiece_model({reinterpret_cast<const uint8_t*>(s.data()), s.size()}, "flipped");
      (void)t;
      const std::string path = dir.write("flip.model", s);
      auto tok = load_spm_from_model_file(path, "");
      tok->decode(tok->encode("ab ab! <br>\xff"));
    } catch (const Error&) {
    }
  }
  EXPECT_THROW(load_spm_from_model_file((dir.path / "missing.model").string(), ""), Error);
}

TEST(SpmMalformed, BadJsonIsAnErrorNamingTheFile) {
  const nlohmann::json good = read_json_file(kTiny + "/tokenizer.json");
  auto expect_error = [](const nlohmann::json& j, const char* what) {
    try {
      load_spm_from_hf_json(j, "/some/folder");
      ADD_FAILURE() << "no error: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("/some/folder/tokenizer.json"), std::string::npos) << e.what();
    }
  };
  expect_error(nlohmann::json::object(), "no model");
  auto j = good;
  j["model"]["merges"].push_back("nosuch token");
  expect_error(j, "merge of unknown tokens");
  j = good;
  j["model"]["merges"] = 5;
  expect_error(j, "merges not a list");
  j = good;
  j["model"]["vocab"]["<extra>"] = 99999;
  expect_error(j, "id out of range");
  j = good;
  j["normalizer"] = {{"type", "NFKC"}};
  expect_error(j, "unsupported normalizer");
  j = good;
  j["model"]["vocab"]["<unk>"] = "zero";
  expect_error(j, "id of the wrong type");
}

TEST(SpmMalformed, BadGgufVocabularyIsAnError) {
  const SentencePieceModel sp = parse_sentencepiece_model(
      [] {
        static const std::string b = tiny_model_bytes();
        return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(b.data()), b.size());
      }(),
      "tiny");
  auto expect_error = [&](auto&& edit, const char* what) {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    std::vector<std::string> tokens;
    for (const auto& p : sp.pieces) tokens.push_back(p.piece);
    w.set_string_array("tokenizer.ggml.tokens", tokens);
    edit(w);
    const auto bytes = w.to_bytes();
    auto file = GgufFile::from_memory(bytes, "bad-vocab.gguf");
    try {
      load_spm_from_gguf(*file);
      ADD_FAILURE() << "no error: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad-vocab.gguf"), std::string::npos) << e.what();
    }
  };
  expect_error([](GgufWriter& w) { w.set_string_array("tokenizer.ggml.tokens", {}); }, "no tokens");
  expect_error([](GgufWriter& w) { w.set_u32("tokenizer.ggml.bos_token_id", 500); }, "bos out of range");
  expect_error([](GgufWriter& w) { w.set_string("tokenizer.ggml.model", "gpt2"); }, "wrong model");
  expect_error(
      [](GgufWriter& w) {
        GgufValue types;
        types.type = GgufValueType::ARRAY;
        types.array_type = GgufValueType::I32;
        types.array.resize(3);
        for (auto& v : types.array) v.type = GgufValueType::I32;
        w.set("tokenizer.ggml.token_type", types);
      },
      "token_type length");
  expect_error(
      [](GgufWriter& w) {
        GgufValue types;
        types.type = GgufValueType::ARRAY;
        types.array_type = GgufValueType::I32;
        types.array.resize(11);
        for (auto& v : types.array) {
          v.type = GgufValueType::I32;
          v.i = 6;  // every token a "byte" token, but "a" is not <0xNN>
        }
        w.set("tokenizer.ggml.token_type", types);
      },
      "byte token text");
}

}  // namespace
