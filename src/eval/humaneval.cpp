// HumanEval generation and scoring (see humaneval.h). Programs run in the sandbox, several at a
// time; generation runs one problem after another on the model's thread pool.
#include "eval/humaneval.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/gzip.h"
#include "generate/generator.h"

namespace billion::eval {

std::vector<HumanEvalProblem> load_humaneval(const std::string& path) {
  std::string text;
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
    text = read_gzip_file(path);
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, "cannot open the HumanEval problems file");
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  std::vector<HumanEvalProblem> problems;
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
      problems.push_back({j.at("task_id").get<std::string>(), j.at("prompt").get<std::string>(),
                          j.value("canonical_solution", std::string()), j.at("test").get<std::string>(),
                          j.at("entry_point").get<std::string>()});
    } catch (const nlohmann::json::exception& e) {
      fail(path + ":" + std::to_string(number), "not a HumanEval problem record: {}", e.what());
    }
  }
  if (problems.empty()) fail(path, "no HumanEval problems in the file");
  return problems;
}

const std::vector<std::string>& humaneval_stop_strings() {
  static const std::vector<std::string> stops = {"\nclass", "\ndef", "\n#", "\nif", "\nprint"};
  return stops;
}

std::vector<SandboxResult> run_programs(const Sandbox& sandbox, const std::vector<std::string>& programs, int workers) {
  std::vector<SandboxResult> results(programs.size());
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < programs.size();) {
      try {
        results[i] = sandbox.run(programs[i]);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int w = 1; w < std::max(1, workers); ++w) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
  return results;
}

HumanEvalResult run_humaneval(Model& model, const std::vector<HumanEvalProblem>& all_problems, const HumanEvalOptions& options,
                              ThreadPool& pool, const ProgressFn& progress) {
  using Clock = std::chrono::steady_clock;
  if (options.samples < 1) fail("humaneval", "--samples must be at least 1 (got {})", options.samples);
  Sandbox sandbox(options.limits, options.python);  // fails early when Python is missing
  size_t count = options.limit > 0 ? std::min<size_t>(options.limit, all_problems.size()) : all_problems.size();
  HumanEvalResult result;
  result.samples = options.samples;
  int longest = 0;
  std::vector<std::vector<int32_t>> prompts(count);
  for (size_t i = 0; i < count; ++i) {
    prompts[i] = model.tokenizer().encode(all_problems[i].prompt, {.add_special = true, .parse_special = false});
    longest = std::max<int>(longest, prompts[i].size());
  }
  int capacity = std::min(model.spec().context_length, longest + options.max_new_tokens);
  auto cache = model.decoder().make_cache(capacity);

  std::vector<std::string> programs;
  std::vector<size_t> owner;  // programs[i] belongs to problem owner[i]
  auto gen_start = Clock::now();
  for (size_t i = 0; i < count; ++i) {
    const auto& p = all_problems[i];
    HumanEvalProblemResult pr;
    pr.task_id = p.task_id;
    pr.n = options.samples;
    std::vector<int32_t> cached;  // the prompt stays in the cache between samples
    for (int s = 0; s < options.samples; ++s) {
      GenerationOptions g;
      g.max_new_tokens = std::min(options.max_new_tokens, capacity - static_cast<int>(prompts[i].size()));
      if (options.samples > 1) {
        g.sampling.temperature = options.temperature;
        g.sampling.top_p = 0.95f;
        g.sampling.seed = options.seed + i * 1000 + s;
      }
      g.stop_strings = humaneval_stop_strings();
      auto out = generate(model, cache, cached, prompts[i], g, pool);
      result.generated_tokens += static_cast<int>(out.tokens.size());
      programs.push_back(humaneval_program(p.prompt, out.text, p.test, p.entry_point));
      owner.push_back(result.problems.size());
      pr.completions.push_back(out.text);
    }
    result.problems.push_back(std::move(pr));
    if (progress) progress(static_cast<int>(i + 1), static_cast<int>(count));
  }
  result.generation_seconds = std::chrono::duration<double>(Clock::now() - gen_start).count();

  auto exec_start = Clock::now();
  auto runs = run_programs(sandbox, programs, options.workers);
  result.execution_seconds = std::chrono::duration<double>(Clock::now() - exec_start).count();
  for (size_t i = 0; i < runs.size(); ++i) {
    auto& pr = result.problems[owner[i]];
    pr.outcomes.push_back(runs[i].summary());
    if (runs[i].passed()) ++pr.correct;
  }
  for (int k : {1, 10, 100}) {
    if (k > options.samples) break;
    double sum = 0;
    for (const auto& pr : result.problems) sum += pass_at_k(pr.n, pr.correct, k);
    result.pass_at_k[k] = result.problems.empty() ? 0.0 : sum / result.problems.size();
  }
  result.pass_at_1 = result.pass_at_k[1];
  return result;
}

}  // namespace billion::eval
