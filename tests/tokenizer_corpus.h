// The tokenizer reference corpus, rebuilt at run time from ../shared exactly as
// tools/make_tokenizer_refs.py builds it (MMLU and HumanEval text may not be copied into the
// repository, so only ids and string hashes are committed). Keep the two builders in sync: the
// fixture lines start with the FNV-1a 64 hash of each string, and the test reports a mismatch as
// corpus drift, not as a tokenizer bug.
//
// Order: tests/fixtures/tokenizer/edge_cases.json; then for each subject in
// kTokenizerCorpusSubjects every row of data/mmlu/test/<subject>_test.csv as the question, then
// "Q\nA. a\nB. b\nC. c\nD. d\nAnswer:"; then each HumanEval record's prompt and
// canonical_solution.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/gzip.h"
#include "core/mapped_file.h"
#include "formats/csv.h"

namespace billion::test {

struct CorpusString {
  std::string name;   // "edge/emoji", "mmlu/anatomy/3/formatted", "HumanEval/7/prompt"
  std::string bytes;  // may be invalid UTF-8 (edge cases named invalid_*)
};

inline constexpr const char* kTokenizerCorpusSubjects[] = {
    "anatomy", "high_school_physics", "high_school_us_history", "marketing", "world_religions"};

inline uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

inline std::string fnv1a64_hex(std::string_view bytes) {
  return fmt::format("{:016x}", fnv1a64(bytes));
}

inline std::string bytes_from_hex(const std::string& hex, const std::string& where) {
  if (hex.size() % 2) fail(where, "odd number of hex digits");
  std::string out;
  for (size_t k = 0; k < hex.size(); k += 2) {
    out += static_cast<char>(std::stoi(hex.substr(k, 2), nullptr, 16));
  }
  return out;
}

// Edge cases: {"name", and one of "text" | "repeat"+"count" | "bytes_hex"} (see the file's
// "scheme" entry).
inline std::vector<CorpusString> load_edge_cases(const std::string& path) {
  auto doc = nlohmann::json::parse(read_text_file(path));
  std::vector<CorpusString> out;
  for (const auto& c : doc.at("cases")) {
    CorpusString s;
    s.name = "edge/" + c.at("name").get<std::string>();
    if (c.contains("text")) {
      s.bytes = c["text"].get<std::string>();
    } else if (c.contains("repeat")) {
      auto unit = c["repeat"].get<std::string>();
      for (int k = 0, n = c.at("count").get<int>(); k < n; ++k) s.bytes += unit;
    } else if (c.contains("bytes_hex")) {
      s.bytes = bytes_from_hex(c["bytes_hex"].get<std::string>(), path + ": " + s.name);
    } else {
      fail(path, "case {} has none of text, repeat, bytes_hex", s.name);
    }
    out.push_back(std::move(s));
  }
  return out;
}

inline std::vector<CorpusString> build_tokenizer_corpus(const std::string& shared_dir,
                                                        const std::string& fixtures_dir) {
  auto corpus = load_edge_cases(fixtures_dir + "/tokenizer/edge_cases.json");
  for (const char* subject : kTokenizerCorpusSubjects) {
    const std::string path = shared_dir + "/data/mmlu/test/" + subject + "_test.csv";
    auto rows = read_csv_file(path);
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      if (r.size() != 6) fail(path, "row {} has {} fields, expected 6", i + 1, r.size());
      const std::string prefix = fmt::format("mmlu/{}/{}/", subject, i);
      corpus.push_back({prefix + "question", r[0]});
      corpus.push_back({prefix + "formatted", r[0] + "\nA. " + r[1] + "\nB. " + r[2] + "\nC. " +
                                                  r[3] + "\nD. " + r[4] + "\nAnswer:"});
    }
  }
  const std::string he_path = shared_dir + "/data/humaneval/HumanEval.jsonl.gz";
  const std::string jsonl = read_gzip_file(he_path);
  size_t start = 0;
  while (start < jsonl.size()) {
    size_t end = jsonl.find('\n', start);
    if (end == std::string::npos) end = jsonl.size();
    std::string_view line(jsonl.data() + start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto rec = nlohmann::json::parse(line);
    const auto id = rec.at("task_id").get<std::string>();
    corpus.push_back({id + "/prompt", rec.at("prompt").get<std::string>()});
    corpus.push_back({id + "/canonical_solution", rec.at("canonical_solution").get<std::string>()});
  }
  return corpus;
}

}  // namespace billion::test
