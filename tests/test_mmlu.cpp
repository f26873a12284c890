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

TEST(RealModelMmlu, AgreesWithLlamaCppReference) {
  std::string path = smollm2_path();
  REQUIRE_SMOLLM2(path);
  std::ifstream in(std::string(BILLION_FIXTURES_DIR) + "/mmlu/smollm2_reference.json");
  ASSERT_TRUE(in) << "tests/fixtures/mmlu/smollm2_reference.json missing; make it with tools/make_mmlu_reference.py";
  auto ref = nlohmann::json::parse(in);
  auto model = Model::load(path);
  ThreadPool pool(0);
  MmluOptions o;
  o.limit = ref.at("limit_per_subject").get<int>();
  auto ours = run_mmlu(*model, kMmlu, o, pool);
  int agree = 0, total = 0;
  for (const auto& s : ours.subjects) {
    std::string chosen = ref.at("subjects").at(s.name).at("chosen");
    ASSERT_EQ(chosen.size(), s.predictions.size()) << s.name;
    for (size_t q = 0; q < chosen.size(); ++q) {
      agree += chosen[q] == 'A' + s.predictions[q];
      ++total;
    }
  }
  double agreement = static_cast<double>(agree) / total;
  RecordProperty("agreement", std::to_string(agreement));
  std::printf("MMLU letters agreeing with llama.cpp: %d/%d; accuracy ours %.4f, reference %.4f\n", agree, total, ours.accuracy,
              ref.at("accuracy").get<double>());
  EXPECT_GE(agreement, 0.98);
  EXPECT_LE(std::abs(ours.accuracy - ref.at("accuracy").get<double>()), 0.01);
}

}  // namespace
