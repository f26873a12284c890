// HumanEval (openai/human-eval): load the problems, complete each prompt greedily (or n samples),
// cut at the standard stop sequences, run prompt + completion + tests in the sandbox, and report
// pass@1 (and pass@k with the unbiased estimator when several samples are drawn).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "eval/sandbox.h"
#include "model/model.h"

namespace billion::eval {

struct HumanEvalProblem {
  std::string task_id, prompt, canonical_solution, test, entry_point;
};

// Reads HumanEval.jsonl or HumanEval.jsonl.gz; errors name the file and line.
std::vector<HumanEvalProblem> load_humaneval(const std::string& path);

// lm-evaluation-harness' stop sequences for HumanEval (CONVENTIONS.md §3).
const std::vector<std::string>& humaneval_stop_strings();

// Runs many programs, `workers` at a time (each in its own sandboxed process).
std::vector<SandboxResult> run_programs(const Sandbox& sandbox, const std::vector<std::string>& programs, int workers);

struct HumanEvalOptions {
  int limit = 20;             // first N problems; 0 = all 164
  int samples = 1;            // n per problem; 1 = greedy
  float temperature = 0.8f;   // used only when samples > 1 (Codex paper's setting for pass@k)
  int max_new_tokens = 512;
  int workers = 2;            // programs executed in parallel
  SandboxLimits limits;
  std::string python;         // interpreter; empty = python3 from PATH
  uint64_t seed = 1234;
};

struct HumanEvalProblemResult {
  std::string task_id;
  int n = 0, correct = 0;
  std::vector<std::string> completions;
  std::vector<std::string> outcomes;  // SandboxResult::summary() per sample
};

struct HumanEvalResult {
  std::vector<HumanEvalProblemResult> problems;
  int samples = 1;
  double pass_at_1 = 0;
  std::map<int, double> pass_at_k;  // k → mean over problems, for k in {1, 10, 100} with k <= n
  double generation_seconds = 0, execution_seconds = 0;
  int generated_tokens = 0;
};

// done, total: problems completed so far (for a progress line).
using ProgressFn = std::function<void(int done, int total)>;

HumanEvalResult run_humaneval(Model& model, const std::vector<HumanEvalProblem>& problems, const HumanEvalOptions& options,
                              ThreadPool& pool, const ProgressFn& progress = {});

}  // namespace billion::eval
