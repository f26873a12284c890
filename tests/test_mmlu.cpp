// MMLU (src/eval/mmlu.h): the lm-evaluation-harness prompt text exactly, subject selection and
// data errors, and — with the real SmolLM2 model (tests named RealModel*) — that reusing the
// few-shot header's KV cache changes nothing, and that our chosen letters agree with the
// independent llama-cpp-python reference committed in tests/fixtures/mmlu (made by
// tools/make_mmlu_reference.py).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "eval/mmlu.h"
#include "model/model.h"

using namespace billion;
using namespace billion::eval;
namespace fs = std::filesystem;

namespace {

const std::string kMmlu = std::string(BILLION_SHARED_DIR) + "/data/mmlu";

std::string smollm2_path() {
  if (const char* env = std::getenv("BILLION_SMOLLM2_GGUF"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.cache/billion/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

#define REQUIRE_SMOLLM2(path)                                                                                 \
  if (!fs::exists(path))                                                                                      \
  FAIL() << "SmolLM2 GGUF not found at '" << path << "'. Run ./setup.sh (it places it at "                   \
         << "~/.cache/billion/models/SmolLM2-135M-Instruct.Q4_1.gguf), or point BILLION_SMOLLM2_GGUF at it"

TEST(Mmlu, PromptFormatIsTheHarnessFormat) {
  MmluSubject s;
  s.name = "high_school_biology";
  s.dev = {{"  What is 1+1?\n", {"1", "2", "3", "4"}, 1}, {"Pick C.", {"a", "b", "c", "d"}, 2}};
  EXPECT_EQ(mmlu_header(s, 5),
            "The following are multiple choice questions (with answers) about high school biology.\n\n"
            "What is 1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
            "Pick C.\nA. a\nB. b\nC. c\nD. d\nAnswer: C\n\n");
  EXPECT_EQ(mmlu_header(s, 1).find("Pick C."), std::string::npos);  // k shots = the first k dev rows
  EXPECT_EQ(mmlu_question_text({"Q?", {"w", "x", "y", "z"}, 0}), "Q?\nA. w\nB. x\nC. y\nD. z\nAnswer:");
}

TEST(Mmlu, SubjectsAndData) {
  EXPECT_EQ(mmlu_subjects_from("", kMmlu).size(), 10u);
  EXPECT_EQ(mmlu_subjects_from("default", kMmlu), mmlu_default_subjects());
  EXPECT_EQ(mmlu_subjects_from("all", kMmlu).size(), 57u);
  EXPECT_EQ(mmlu_subjects_from("anatomy, marketing", kMmlu), (std::vector<std::string>{"anatomy", "marketing"}));
  EXPECT_THROW(mmlu_subjects_from("anatomy,astrology", kMmlu), Error);
  auto s = load_mmlu_subject(kMmlu, "abstract_algebra");
  EXPECT_EQ(s.dev.size(), 5u);
  EXPECT_EQ(s.test.size(), 100u);
  for (const auto& q : s.test) EXPECT_TRUE(q.answer >= 0 && q.answer < 4);
  auto us = load_mmlu_subject(kMmlu, "high_school_us_history");  // long quoted passages with line breaks
  EXPECT_EQ(us.test.size(), 204u);

  fs::path empty = fs::temp_directory_path() / ("billion-empty-mmlu-" + std::to_string(::getpid()));
  fs::create_directories(empty);
  try {
    mmlu_all_subjects(empty.string());
    ADD_FAILURE() << "expected an error for an empty data folder";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(empty.string()), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_mmlu_subject(empty.string(), "anatomy"), Error);
  fs::remove_all(empty);
}

TEST(RealModelMmlu, PrefixReuseChangesNothing) {
  std::string path = smollm2_path();
  REQUIRE_SMOLLM2(path);
  auto model = Model::load(path);
  ThreadPool pool(0);
  MmluOptions o;
  o.subjects = {"abstract_algebra", "marketing"};
  o.limit = 3;
  auto with = run_mmlu(*model, kMmlu, o, pool);
  o.reuse_prefix = false;
  auto without = run_mmlu(*model, kMmlu, o, pool);
  ASSERT_EQ(with.questions, 6);
  EXPECT_EQ(with.scoring, "single forward");  // SmolLM2: " A".." D" are single tokens
  EXPECT_LT(with.evaluated_tokens * 2, without.evaluated_tokens);  // the header is evaluated once
  for (size_t s = 0; s < with.subjects.size(); ++s)
    for (size_t q = 0; q < with.subjects[s].logprobs.size(); ++q) {
      EXPECT_EQ(with.subjects[s].predictions[q], without.subjects[s].predictions[q]);
      for (int L = 0; L < 4; ++L)
        EXPECT_NEAR(with.subjects[s].logprobs[q][L], without.subjects[s].logprobs[q][L], 1e-3);
    }
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  return nlohmann::json::parse(in);
}

// The llama-cpp-python reference (tools/make_mmlu_reference.py): every question of the ten
// default subjects, the letter llama.cpp's logits choose.
nlohmann::json llama_cpp_reference() {
  auto ref = read_json_file(std::string(BILLION_FIXTURES_DIR) + "/mmlu/smollm2_reference.json");
  EXPECT_EQ(ref.at("limit_per_subject").get<int>(), 0) << "the committed reference should cover every question";
  return ref;
}

struct Agreement {
  int agree = 0, total = 0, ours_correct = 0, ref_correct = 0;
  double rate() const { return total ? double(agree) / total : 0; }
};

// Letters `ours` (per subject, in file order) against the reference's first ours.size() letters.
Agreement compare_letters(const nlohmann::json& ref, const std::map<std::string, std::string>& ours) {
  Agreement a;
  for (const auto& [subject, letters] : ours) {
    const auto& r = ref.at("subjects").at(subject);
    const std::string chosen = r.at("chosen"), gold = r.at("gold");
    EXPECT_LE(letters.size(), chosen.size()) << subject;
    for (size_t q = 0; q < letters.size() && q < chosen.size(); ++q) {
      a.agree += letters[q] == chosen[q];
      a.ours_correct += letters[q] == gold[q];
      a.ref_correct += chosen[q] == gold[q];
      ++a.total;
    }
  }
  return a;
}

// The engine now, on the first kSample questions of each subject (CI time: the full 2,107 take
// ~10 minutes here; the full run is checked from its committed results file below).
TEST(RealModelMmlu, AgreesWithLlamaCppReference) {
  constexpr int kSample = 20;
  std::string path = smollm2_path();
  REQUIRE_SMOLLM2(path);
  auto ref = llama_cpp_reference();
  auto model = Model::load(path);
  ThreadPool pool(0);
  MmluOptions o;
  o.limit = kSample;
  auto result = run_mmlu(*model, kMmlu, o, pool);
  std::map<std::string, std::string> ours;
  for (const auto& s : result.subjects)
    for (int p : s.predictions) ours[s.name] += static_cast<char>('A' + p);
  ASSERT_EQ(ours.size(), 10u);
  Agreement a = compare_letters(ref, ours);
  ASSERT_EQ(a.total, 10 * kSample);
  std::printf("MMLU letters agreeing with llama.cpp (first %d per subject): %d/%d; accuracy ours %.4f, llama.cpp %.4f\n", kSample, a.agree,
              a.total, double(a.ours_correct) / a.total, double(a.ref_correct) / a.total);
  EXPECT_GE(a.rate(), 0.98);
  EXPECT_LE(std::abs(a.ours_correct - a.ref_correct), a.total / 100) << "accuracies more than 1 point apart";
}

// The committed runs of `billion bench --tasks mmlu` in results/ against the reference: the full
// ten subjects (2,107 questions, header KV reuse on), and the first 20 questions per subject with
// and without the reuse (the speed comparison of docs/COMPARISON.md). Each: the reference's model
// file, >= 98% of the letters, accuracy within 1 point; and all three choose the same letters
// where they overlap.
TEST(RealModelMmlu, CommittedRunsAgreeWithLlamaCppReference) {
  struct Run {
    const char* file;
    int questions;
    bool reuse;
  };
  const Run runs[] = {{"smollm2-135m-mmlu-full.json", 2107, true},
                      {"smollm2-135m-mmlu-limit20.json", 200, true},
                      {"smollm2-135m-mmlu-limit20-no-prefix-reuse.json", 200, false}};
  auto ref = llama_cpp_reference();
  std::vector<std::map<std::string, std::string>> letters;
  for (const Run& run : runs) {
    auto results = read_json_file(std::string(BILLION_SOURCE_DIR) + "/results/" + run.file);
    ASSERT_EQ(results.at("models").size(), 1u) << run.file;
    const auto& m = results.at("models").begin().value();
    EXPECT_NE(m.at("weights_sha256").dump().find(ref.at("model_sha256").get<std::string>()), std::string::npos)
        << run.file << " was not made from the reference's model file";
    EXPECT_EQ(m.at("mmlu").at("prefix_reuse").get<bool>(), run.reuse) << run.file;
    auto& ours = letters.emplace_back();
    for (const auto& [subject, s] : m.at("mmlu").at("subjects").items()) ours[subject] = s.at("chosen").get<std::string>();
    Agreement a = compare_letters(ref, ours);
    EXPECT_EQ(a.total, run.questions) << run.file;
    std::printf("%s: %d/%d letters agree with llama.cpp (%.2f%%); accuracy %.4f vs %.4f\n", run.file, a.agree, a.total, 100 * a.rate(),
                double(a.ours_correct) / a.total, double(a.ref_correct) / a.total);
    EXPECT_GE(a.rate(), 0.98) << run.file;
    EXPECT_LE(std::abs(a.ours_correct - a.ref_correct), a.total / 100) << run.file << ": accuracies more than 1 point apart";
  }
  for (const auto& [subject, sample] : letters[1]) {
    EXPECT_EQ(sample, letters[2].at(subject)) << subject << ": the header reuse changed some answers";
    EXPECT_EQ(sample, letters[0].at(subject).substr(0, sample.size())) << subject << ": the full run and the sample disagree";
  }
}

}  // namespace
