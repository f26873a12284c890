// `billion bench`: MMLU (5-shot), HumanEval (sandboxed), speed and memory for one or more models
// on this machine; a progress line while it runs, a Markdown table at the end, and a results
// file (results/<timestamp>.json; fields explained in results/README.md).
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "cli/common_options.h"
#include "cli/model_path.h"
#include "core/error.h"
#include "core/process_memory.h"
#include "eval/humaneval.h"
#include "eval/mmlu.h"
#include "eval/progress.h"
#include "eval/results.h"
#include "eval/sandbox.h"
#include "eval/speed.h"
#include "gpu/cuda_backend.h"
#include "hub/dataset_fetch.h"
#include "hub/model_alias.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct BenchOptions {
  std::vector<std::string> models;
  std::string device = "cpu";
  std::string gpu_weights = "f16";
  std::string tasks = "mmlu,humaneval,speed,memory";
  std::string mmlu_subjects = "default";
  int limit = 0;  // 0 = task default (all MMLU questions, 20 HumanEval problems)
  int samples = 1;
  bool no_prefix_reuse = false, quiet = false, offline = false;
  std::string data, out, python;
  billion::cli::ModelFlags model_flags;
};

const char* kSmolFile = "SmolLM2-135M-Instruct.Q4_1.gguf";

// The small ungated default: $BILLION_SMOLLM2_GGUF, else ~/.cache/billion/models/<file>.
std::string smollm2_default() {
  if (const char* env = std::getenv("BILLION_SMOLLM2_GGUF"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.cache/billion/models/" + kSmolFile;
}

std::vector<std::string> default_models() {
  std::vector<std::string> found;
  for (const auto& name : billion::hub::default_download_models()) {
    try {
      billion::resolve_model_path(name);
      found.push_back(name);
    } catch (const billion::Error&) {
    }
  }
  if (!found.empty()) return found;
  std::string smol = smollm2_default();
  std::fprintf(stderr,
               "note: none of the four target models is in the cache, so this runs the small default %s.\n"
               "      `billion download` fetches the four (some need a Hugging Face token and an accepted licence).\n",
               smol.c_str());
  if (!fs::exists(smol))
    billion::fail(smol, "the default model is not there either; set BILLION_SMOLLM2_GGUF or pass --model PATH");
  return {smol};
}

// The data folder: --data or $BILLION_DATA, used as they are; else the billion cache
// ($BILLION_HOME/data, default ~/.cache/billion/data), where `managed` data sets are fetched
// and verified on first use (src/hub/dataset_fetch.h).
std::string data_dir(const BenchOptions& o, bool& managed) {
  managed = false;
  if (!o.data.empty()) return o.data;
  if (const char* env = std::getenv("BILLION_DATA"); env && *env) return env;
  managed = true;
  return billion::hub::default_data_dir().string();
}

// Fetches (or, offline, insists on) the data sets the chosen tasks read.
void ensure_bench_data(const BenchOptions& o, const std::string& dir, const std::vector<std::string>& tasks) {
  std::vector<std::string> names;
  for (const char* t : {"mmlu", "humaneval"}) {
    if (std::find(tasks.begin(), tasks.end(), t) != tasks.end()) names.push_back(t);
  }
  billion::hub::DataFetchSettings s;
  s.data_dir = dir;
  s.offline = o.offline;
  s.progress_mode = o.quiet                        ? billion::hub::Progress::Mode::kQuiet
                    : ::isatty(STDERR_FILENO) != 0 ? billion::hub::Progress::Mode::kTerminal
                                                   : billion::hub::Progress::Mode::kPlain;
  s.out = stderr;
  billion::hub::ensure_datasets(names, s);
}

bool has_task(const std::vector<std::string>& tasks, const std::string& t) {
  return std::find(tasks.begin(), tasks.end(), t) != tasks.end();
}

std::string display_name(const std::string& model) {
  fs::path p(model);
  if (fs::exists(p)) return fs::is_directory(p) ? fs::canonical(p).filename().string() : p.stem().string();
  return model;
}

void run(const BenchOptions& o) {
  using namespace billion;
  const bool cuda = o.device == "cuda";
  gpu::CudaOptions cuda_options;
  cuda_options.weights = gpu::parse_weight_precision(o.gpu_weights);
  if (std::string why; cuda && !gpu::cuda_available(&why)) fail("--device cuda", "{}", why);
  std::vector<std::string> tasks;
  for (size_t start = 0; start <= o.tasks.size();) {
    size_t end = std::min(o.tasks.find(',', start), o.tasks.size());
    std::string t = o.tasks.substr(start, end - start);
    if (!t.empty()) {
      if (t != "mmlu" && t != "humaneval" && t != "speed" && t != "memory")
        fail("--tasks", "unknown task \"{}\" (choose from mmlu, humaneval, speed, memory)", t);
      tasks.push_back(t);
    }
    start = end + 1;
  }
  if (tasks.empty()) fail("--tasks", "no task named");

  // Check everything that can fail before spending minutes on a model.
  bool managed_data = false;
  std::string data = data_dir(o, managed_data);
  if (managed_data) ensure_bench_data(o, data, tasks);
  std::string mmlu_dir = data + "/mmlu", humaneval_file = data + "/humaneval/HumanEval.jsonl.gz";
  std::vector<std::string> subjects;
  if (has_task(tasks, "mmlu")) {
    if (!fs::is_directory(mmlu_dir + "/test"))
      fail(mmlu_dir, "no MMLU data (expected dev/ and test/ with *_dev.csv and *_test.csv); pass --data DIR or set BILLION_DATA "
                     "to a folder holding mmlu/ and humaneval/ (e.g. ../shared/data)");
    subjects = eval::mmlu_subjects_from(o.mmlu_subjects, mmlu_dir);
  }
  std::vector<eval::HumanEvalProblem> problems;
  if (has_task(tasks, "humaneval")) {
    if (!fs::exists(humaneval_file))
      fail(humaneval_file, "no HumanEval data; pass --data DIR or set BILLION_DATA to a folder holding humaneval/HumanEval.jsonl.gz");
    problems = eval::load_humaneval(humaneval_file);
    eval::Sandbox probe({}, o.python);  // a missing interpreter is reported now
    std::fprintf(stderr, "HumanEval sandbox: %s, interpreter %s\n", eval::Sandbox::isolation().describe().c_str(), probe.python().c_str());
  }
  std::vector<std::string> models = o.models.empty() ? default_models() : o.models;
  std::vector<std::string> paths;
  for (const auto& m : models) paths.push_back(cli::model_path(m));

  ThreadPool pool(o.model_flags.threads);
  bool terminal = cli::stdout_is_terminal();
  json results{{"timestamp", eval::utc_timestamp()},
               {"hardware", eval::hardware_info(o.device)},
               {"software", eval::software_info()},
               {"settings",
                {{"tasks", tasks},
                 {"device", o.device},
                 {"gpu_weights", cuda ? json(o.gpu_weights) : json(nullptr)},
                 {"threads", pool.size()},
                 {"quantization", o.model_flags.quantize.empty() ? "as stored" : o.model_flags.quantize},
                 {"limit", o.limit},
                 {"mmlu_subjects", subjects},
                 {"mmlu_shots", 5},
                 {"mmlu_prefix_reuse", !o.no_prefix_reuse},
                 {"humaneval_samples", o.samples},
                 {"humaneval_timeout_s", eval::SandboxLimits{}.wall_seconds},
                 {"data_dir", fs::absolute(data).string()}}},
               {"models", json::object()}};

  for (size_t mi = 0; mi < models.size(); ++mi) {
    std::string name = display_name(models[mi]);
    reset_peak_memory();
    uint64_t rss_before = current_rss_bytes();
    LoadOptions load = o.model_flags.load_options();
    load.interleave_weights = !cuda;  // the GPU gets its own copy: keep the host's in the file's pages
    auto model = Model::load(paths[mi], load);
    std::shared_ptr<DeviceBackend> backend;
    if (cuda) {
      if (!o.quiet) std::fprintf(stderr, "[cuda] %s: uploading the weights as %s\n", name.c_str(), o.gpu_weights.c_str());
      backend = gpu::attach_cuda(model->decoder(), cuda_options);
      results["hardware"]["gpu_name"] = backend->device_name();
    }
    json m{{"path", fs::absolute(paths[mi]).string()},
           {"format", model->format()},
           {"architecture", model->spec().family},
           {"quantization", o.model_flags.quantize.empty() ? "as stored" : o.model_flags.quantize},
           {"weights_sha256", eval::weights_sha256(paths[mi])},
           {"mmlu_accuracy", nullptr},
           {"humaneval_pass_rate", nullptr},
           {"tokens_per_second", nullptr},
           {"peak_memory_gb", nullptr}};
    if (has_task(tasks, "mmlu")) {
      eval::MmluOptions mo;
      mo.subjects = subjects;
      mo.limit = o.limit;
      mo.reuse_prefix = !o.no_prefix_reuse;
      eval::ProgressLine line("mmlu", name, terminal, o.quiet);
      auto r = eval::run_mmlu(*model, mmlu_dir, mo, pool, [&](int d, int t) { line.update(d, t); });
      line.finish();
      json per = json::object();
      for (const auto& s : r.subjects) {
        std::string chosen;  // one letter per question, in file order (for comparing runs)
        for (int p : s.predictions) chosen += static_cast<char>('A' + p);
        per[s.name] = {{"accuracy", s.accuracy}, {"questions", s.questions}, {"correct", s.correct}, {"chosen", chosen}};
      }
      m["mmlu_accuracy"] = r.accuracy;
      m["mmlu"] = {{"accuracy", r.accuracy},         {"questions", r.questions},       {"correct", r.correct},
                   {"shots", r.shots},               {"prefix_reuse", r.reuse_prefix}, {"scoring", r.scoring},
                   {"seconds", r.seconds},           {"questions_per_second", r.questions_per_second()},
                   {"evaluated_tokens", r.evaluated_tokens}, {"subjects", per}};
    }
    if (has_task(tasks, "humaneval")) {
      eval::HumanEvalOptions ho;
      ho.limit = o.limit > 0 ? o.limit : 20;
      ho.samples = o.samples;
      ho.python = o.python;
      eval::ProgressLine line("humaneval", name, terminal, o.quiet);
      auto r = eval::run_humaneval(*model, problems, ho, pool, [&](int d, int t) { line.update(d, t); });
      line.finish();
      json per = json::object();
      json pak = json::object();
      for (const auto& [k, v] : r.pass_at_k) pak[fmt::format("pass@{}", k)] = v;
      for (const auto& p : r.problems)
        per[p.task_id] = {{"correct", p.correct}, {"samples", p.n}, {"outcomes", p.outcomes}, {"completions", p.completions}};
      m["humaneval_pass_rate"] = r.pass_at_1;
      m["humaneval"] = {{"problems", r.problems.size()}, {"samples", r.samples},
                        {"pass_at_k", pak},              {"generated_tokens", r.generated_tokens},
                        {"generation_seconds", r.generation_seconds}, {"execution_seconds", r.execution_seconds},
                        {"sandbox", eval::Sandbox::isolation().describe()}, {"results", per}};
    }
    if (has_task(tasks, "speed")) {
      if (!o.quiet) std::fprintf(stderr, "[speed] %s: 1 warm-up + 5 timed runs\n", name.c_str());
      auto r = eval::run_speed(*model, {}, pool);
      m["tokens_per_second"] = r.decode_tps_mean;
      m["speed"] = {{"runs", r.runs},
                    {"prompt_tokens", r.prompt_tokens},
                    {"new_tokens", r.new_tokens},
                    {"decode_tokens_per_second", r.decode_tps_mean},
                    {"decode_tokens_per_second_std", r.decode_tps_std},
                    {"prefill_tokens_per_second", r.prefill_tps_mean},
                    {"time_to_first_token_s", r.ttft_mean_s}};
    }
    if (has_task(tasks, "memory")) {
      if (!has_task(tasks, "speed")) eval::run_speed(*model, {.runs = 1, .new_tokens = 32}, pool);  // something to measure
      uint64_t peak = peak_rss_bytes();
      // On the GPU the number that limits a user is device memory; host RSS is still recorded.
      m["peak_memory_gb"] = (backend ? backend->peak_memory_bytes() : peak) / 1e9;
      m["memory"] = {{"peak_rss_bytes", peak},
                     {"rss_before_load_bytes", rss_before},
                     {"weights_file_bytes", model->file_bytes()},
                     {"gpu_peak_bytes", backend ? json(backend->peak_memory_bytes()) : json(nullptr)},
                     {"note", backend ? "peak_memory_gb is the GPU memory billion allocated at its peak (weights, KV caches, scratch; "
                                        "not the CUDA context); peak_rss_bytes is VmHWM of the host process"
                                      : "VmHWM of the whole process, reset before loading each model; includes the memory-mapped weights it touched"}};
    }
    results["models"][name] = m;
  }

  std::string table = eval::markdown_table(results);
  std::cout << "\n" << table;
  std::string out = o.out;
  if (out.empty()) {
    fs::create_directories("results");
    out = "results/" + eval::utc_timestamp_for_file() + ".json";
  } else if (fs::path(out).has_parent_path()) {
    fs::create_directories(fs::path(out).parent_path());
  }
  std::ofstream f(out);
  f << results.dump(2) << "\n";
  if (!f) fail(out, "cannot write the results file");
  std::fprintf(stderr, "results written to %s\n", out.c_str());
}

void setup(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench", "Benchmark models: MMLU 5-shot, HumanEval (sandboxed), speed and memory");
  cmd->add_option("--model,-m", o->models,
                  "Model(s): .gguf, folder, alias or org/name (repeatable); default: the four targets in the cache, else SmolLM2-135M");
  cmd->add_option("--device", o->device, "cpu, or cuda (an NVIDIA GPU; needs a build with the CUDA toolkit)")
      ->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--gpu-weights", o->gpu_weights,
                  "With --device cuda: hold the weights as f16 (quantized files are expanded) or f32 (transformers' F32 arithmetic)")
      ->capture_default_str()->check(CLI::IsMember({"f16", "f32"}));
  cmd->add_option("--tasks", o->tasks, "Comma-separated: mmlu, humaneval, speed, memory")->capture_default_str();
  cmd->add_option("--mmlu-subjects", o->mmlu_subjects, "'default' (the ten), 'all', or a comma-separated list")->capture_default_str();
  cmd->add_option("--limit", o->limit, "MMLU questions per subject and HumanEval problems; 0 = all MMLU, 20 HumanEval")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--samples", o->samples, "HumanEval samples per problem (n for pass@k; >1 samples at temperature 0.8)")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_flag("--no-prefix-reuse", o->no_prefix_reuse, "Evaluate every MMLU prompt from scratch (to measure what the reuse saves)");
  cmd->add_option("--data", o->data,
                  "Folder with mmlu/ and humaneval/ (default $BILLION_DATA, else ~/.cache/billion/data, fetched on first use)");
  cmd->add_flag("--offline", o->offline, "Never download the data sets (as HF_HUB_OFFLINE=1); see `billion data fetch`");
  cmd->add_option("--python", o->python, "Python interpreter for HumanEval programs (default python3 from PATH)");
  cmd->add_option("--out", o->out, "Results file (default results/<timestamp>.json)");
  cmd->add_flag("--quiet,-q", o->quiet, "No progress lines");
  o->model_flags.add_to(cmd, false);
  cmd->callback([o] { run(*o); });
}

billion::cli::RegisterCommand registration(50, setup);

}  // namespace
