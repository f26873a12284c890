// MMLU (hendrycks/test data) scored as lm-evaluation-harness does (CONVENTIONS.md §2.3):
// 5-shot from the dev split in file order, the harness prompt format, the log-likelihood of
// " A" / " B" / " C" / " D" after "Answer:", micro-averaged accuracy plus per subject.
//
// Cost: the few-shot header is the same for every question of a subject, so it is evaluated
// once and its KV cache reused; a question then costs only its own tokens (--no-prefix-reuse
// evaluates every prompt from scratch, for measuring the difference).
#pragma once
#include <array>
#include <functional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"

namespace billion::eval {

struct MmluQuestion {
  std::string question;
  std::array<std::string, 4> choices;
  int answer = 0;  // 0..3 = A..D
};

struct MmluSubject {
  std::string name;
  std::vector<MmluQuestion> dev, test;
};

// The seed's ten subjects, the default of `billion bench`.
const std::vector<std::string>& mmlu_default_subjects();
// Every subject with a test file in `mmlu_dir`/test, sorted.
std::vector<std::string> mmlu_all_subjects(const std::string& mmlu_dir);
// "" or "default" → the ten; "all" → every subject; else a comma-separated list, each checked
// against the data (an unknown name is an error listing where it looked).
std::vector<std::string> mmlu_subjects_from(const std::string& spec, const std::string& mmlu_dir);

// Reads dev/<subject>_dev.csv and test/<subject>_test.csv (question, A, B, C, D, answer).
MmluSubject load_mmlu_subject(const std::string& mmlu_dir, const std::string& subject);

// "The following are multiple choice questions (with answers) about <subject>.\n\n" followed by
// `shots` solved dev questions, each "<question>\nA. ..\nD. ..\nAnswer: <L>\n\n".
std::string mmlu_header(const MmluSubject& subject, int shots);
// "<question.strip()>\nA. <a>\nB. <b>\nC. <c>\nD. <d>\nAnswer:"
std::string mmlu_question_text(const MmluQuestion& q);

struct MmluOptions {
  std::vector<std::string> subjects;  // empty = the default ten
  int limit = 0;                      // first N test questions per subject; 0 = all
  int shots = 5;
  bool reuse_prefix = true;
};

struct MmluSubjectResult {
  std::string name;
  int questions = 0, correct = 0;
  double accuracy = 0;
  std::vector<int> predictions;                 // chosen letter index per question
  std::vector<std::array<float, 4>> logprobs;   // log P(" A".." D" | prompt) per question
};

struct MmluResult {
  std::vector<MmluSubjectResult> subjects;
  int questions = 0, correct = 0;
  double accuracy = 0;  // micro average: correct / questions over all subjects
  int shots = 5;
  bool reuse_prefix = true;
  std::string scoring;  // "single forward" or "per continuation" (see mmlu.cpp)
  double seconds = 0;
  long evaluated_tokens = 0;  // tokens run through the model (prefix reuse lowers it)
  double questions_per_second() const { return seconds > 0 ? questions / seconds : 0; }
};

using MmluProgressFn = std::function<void(int done, int total)>;

MmluResult run_mmlu(Model& model, const std::string& mmlu_dir, const MmluOptions& options, ThreadPool& pool,
                    const MmluProgressFn& progress = {});

}  // namespace billion::eval
