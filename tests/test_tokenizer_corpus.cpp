// The tokenizer reference corpus (tests/tokenizer_corpus.h) must rebuild, from ../shared, exactly
// the strings tools/make_tokenizer_refs.py encoded: every fixture line's hash is checked here, so
// corpus drift shows up on its own and not as thousands of tokenizer mismatches.
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "core/utf8.h"
#include "tokenizer_corpus.h"

using namespace billion;

namespace {

const std::string kFixtures = BILLION_FIXTURES_DIR;

TEST(TokenizerCorpus, SizeAndNames) {
  auto corpus = test::build_tokenizer_corpus(BILLION_SHARED_DIR, kFixtures);
  EXPECT_GE(corpus.size(), 2000u);
  std::set<std::string> names;
  for (const auto& s : corpus) EXPECT_TRUE(names.insert(s.name).second) << "duplicate " << s.name;
  size_t invalid = 0;
  for (const auto& s : corpus) invalid += !is_valid_utf8(s.bytes);
  EXPECT_EQ(invalid, 8u);  // the invalid_* edge cases, and nothing from MMLU or HumanEval
  EXPECT_EQ(corpus.front().name, "edge/empty");
  EXPECT_EQ(corpus.back().name, "HumanEval/163/canonical_solution");
}

TEST(TokenizerCorpus, EveryFixtureHashMatches) {
  auto corpus = test::build_tokenizer_corpus(BILLION_SHARED_DIR, kFixtures);
  for (const char* fixture : {"smollm2-135m.hf", "pythia-1b.hf", "tinyllama.hf", "tinyllama.spm",
                              "llama3.2-1b.tiktoken", "stablelm.tiktoken"}) {
    const std::string path = kFixtures + "/tokenizer/" + fixture + ".ids.gz";
    std::istringstream in(read_gzip_file(path));
    std::string line;
    size_t i = 0;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      ASSERT_LT(i, corpus.size()) << path << " has more lines than the corpus has strings";
      const std::string hash = line.substr(0, line.find(' '));
      ASSERT_EQ(hash, test::fnv1a64_hex(corpus[i].bytes))
          << path << ": corpus drift at string " << i << " (" << corpus[i].name << " "
          << printable(corpus[i].bytes) << ")";
      const bool no_reference = line.size() >= 2 && line.ends_with(" -");
      EXPECT_EQ(no_reference, !is_valid_utf8(corpus[i].bytes)) << path << " line for " << corpus[i].name;
      ++i;
    }
    EXPECT_EQ(i, corpus.size()) << path;
  }
}

}  // namespace
