// Acceptance: llama.cpp's tokenizer test vocabularies (../shared/tokenizers/llama.cpp-vocab).
// Every ggml-vocab-NAME.gguf.inp/.out pair whose .gguf is present and whose tokenizer model is
// "gpt2" (byte-level BPE) or "llama" (SentencePiece-style) must give exactly the expected ids with
// add_special = false and parse_special = false; other models (bert, ...) and pairs without a
// .gguf are skipped by name. The expected ids were made by HF tokenizers, so this is HF parity.
// Also the llama-bpe pair (its .gguf is not in the snapshot) with the tokenizer built from
// models/llama3.2-1b (tiktoken tokenizer.model + tokenizer_config.json).
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/utf8.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace billion;

namespace {

const std::string kVocabDir = std::string(BILLION_SHARED_DIR) + "/tokenizers/llama.cpp-vocab";

struct Case {
  std::string text;
  std::vector<TokenId> ids;
};

// .inp: texts each followed by "\n__ggml_vocab_test__\n"; .out: one line of ids per text.
std::vector<Case> read_cases(const std::string& inp_path, const std::string& out_path) {
  const std::string inp = read_text_file(inp_path);
  const std::string out = read_text_file(out_path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Case> cases;
  size_t pos = 0;
  while (pos < inp.size()) {
    const size_t end = inp.find(sep, pos);
    if (end == std::string::npos) throw Error(inp_path + ": text after the last separator");
    cases.push_back({inp.substr(pos, end - pos), {}});
    pos = end + sep.size();
  }
  std::istringstream lines(out);
  std::string line;
  size_t k = 0;
  while (std::getline(lines, line)) {
    if (k >= cases.size()) throw Error(out_path + ": more lines than " + inp_path + " has texts");
    std::istringstream ids(line);
    long id;
    while (ids >> id) cases[k].ids.push_back(static_cast<TokenId>(id));
    ++k;
  }
  if (k != cases.size()) throw Error(out_path + ": " + std::to_string(k) + " lines for " + std::to_string(cases.size()) + " texts");
  return cases;
}

std::string ids_text(const std::vector<TokenId>& ids) {
  std::string s = "[";
  for (size_t k = 0; k < ids.size(); ++k) {
    if (k) s += ' ';
    s += std::to_string(ids[k]);
  }
  return s + "]";
}

// Runs every case; returns a report of the mismatches (empty = all equal).
std::string check_cases(const Tokenizer& tok, const std::vector<Case>& cases, size_t& failures) {
  EncodeOptions options;
  options.add_special = false;
  options.parse_special = false;
  std::string report;
  failures = 0;
  for (size_t k = 0; k < cases.size(); ++k) {
    const auto got = tok.encode(cases[k].text, options);
    if (got == cases[k].ids) continue;
    ++failures;
    report += "\n  case " + std::to_string(k) + " " + printable(cases[k].text, 120) + "\n    expected " +
              ids_text(cases[k].ids) + "\n    got      " + ids_text(got);
  }
  return report;
}

// Every NAME with a .inp/.out pair whose .gguf is present and whose tokenizer model is one of
// ours (llama or gpt2). Pairs without a .gguf (not in the snapshot) or of another model (bert)
// are not instantiated rather than skipped; LlamaCppVocabData.Present checks the count, so the
// list cannot silently shrink (six testable pairs: deepseek-coder, deepseek-llm, falcon, mpt,
// refact, starcoder).
std::vector<std::string> vocab_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kVocabDir, ec)) {
    const std::string file = entry.path().filename().string();
    const std::string suffix = ".gguf.inp";
    if (!(file.size() > suffix.size() && file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0)) continue;
    std::string name = file.substr(0, file.size() - suffix.size());
    std::string gguf_path = kVocabDir + "/" + name + ".gguf";
    if (!fs::exists(gguf_path)) continue;
    try {
      std::string model = GgufFile(gguf_path).string_or("tokenizer.ggml.model").value_or("");
      if (model == "gpt2" || model == "llama") names.push_back(name);
    } catch (const Error&) {
      names.push_back(name);  // an unreadable file must fail the test, not vanish from it
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}


class LlamaCppVocab : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaCppVocab, ExactIds) {
  const std::string base = kVocabDir + "/" + GetParam();
  GgufFile gguf(base + ".gguf");
  const std::string model = gguf.string_or("tokenizer.ggml.model").value_or("");
  auto tok = load_tokenizer_from_gguf(gguf);
  ASSERT_TRUE(tok);
  const auto cases = read_cases(base + ".gguf.inp", base + ".gguf.out");
  ASSERT_FALSE(cases.empty());
  size_t failures = 0;
  const std::string report = check_cases(*tok, cases, failures);
  EXPECT_EQ(failures, 0u) << GetParam() << " (" << model << ", pre "
                          << gguf.string_or("tokenizer.ggml.pre").value_or("-") << "): " << failures << " of "
                          << cases.size() << " cases differ:" << report;
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(LlamaCppVocab);
INSTANTIATE_TEST_SUITE_P(Vocab, LlamaCppVocab, ::testing::ValuesIn(vocab_names()), [](const auto& info) {
  std::string name = info.param;
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
});

// The directory must be there: an empty parameter list would otherwise pass silently.
TEST(LlamaCppVocabData, Present) {
  ASSERT_TRUE(fs::is_directory(kVocabDir)) << kVocabDir;
  EXPECT_GE(vocab_names().size(), 6u);
}

TEST(LlamaCppVocabData, LlamaBpeWithLlama32Folder) {
  const std::string base = kVocabDir + "/ggml-vocab-llama-bpe";
  auto tok = load_tokenizer_from_folder(std::string(BILLION_SHARED_DIR) + "/models/llama3.2-1b");
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->kind(), "bpe");
  EXPECT_EQ(tok->vocab_size(), 128256u);
  const auto cases = read_cases(base + ".gguf.inp", base + ".gguf.out");
  size_t failures = 0;
  const std::string report = check_cases(*tok, cases, failures);
  EXPECT_EQ(failures, 0u) << "llama-bpe vs llama3.2-1b: " << failures << " of " << cases.size()
                          << " cases differ:" << report;
}

}  // namespace
