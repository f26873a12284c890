// How much `--quantize int8|int4` changes a real model's predictions (issue #3): on SmolLM2
// dequantized to F32 (the baseline), the next-token distributions of each variant are compared
// with the baseline's at every position of MMLU text — top-1 agreement, mean and max
// KL(baseline ‖ variant) — and each variant's perplexity on the text is reported. Prints a
// Markdown table and writes JSON (--out).
//
// Variants:
//   f32       the GGUF's matrices dequantized to F32 (the baseline; written once as a temporary
//             F32 GGUF through quantize_model_file, then memory-mapped)
//   int8      that F32 file loaded with --quantize int8 (matrices → Q8_0 at load)
//   int4      that F32 file loaded with --quantize int4 (matrices → Q4_0 at load)
//   file      the GGUF as shipped (Q4_1 matrices, int8 activations: the default path)
// As in `billion generate --quantize`, the token embedding (and with it SmolLM2's tied output
// projection) stays F32 in int8/int4. The baseline's values already lie on the file's Q4_1 grid,
// so "int8/int4" here measure re-quantization of those values, which is what a user of the
// shipped file gets; the same flags on an original BF16 checkpoint would start from a finer grid.
//
// Text: for each of the ten default MMLU subjects (eval/mmlu.h), the lm-evaluation-harness
// prompt "The following are multiple choice questions (with answers) about <subject>." + the five
// dev questions, then the test questions, each answered ("...\nAnswer: B\n\n"), tokenized with
// the model's tokenizer (its own BOS setting). Window w takes `window + 1` tokens of subject
// w mod 10 (from offset (w / 10)·window), so --tokens 2000 --window 200 is ten windows, one per
// subject, each scoring 200 next-token predictions from a fresh KV cache (LogitsFor::All).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "eval/mmlu.h"
#include "model/model.h"
#include "model/quantize_file.h"

using namespace billion;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

struct Variant {
  std::string name, weights;
  std::unique_ptr<Model> model;
  // Accumulated over all scored positions.
  int64_t positions = 0, agree = 0;
  double kl_sum = 0, kl_max = 0, nll_sum = 0, seconds = 0;
};

// log-softmax of one row of logits, in double (KL of nearby distributions is a small
// difference of large terms).
void log_softmax(const float* x, int64_t n, std::vector<double>& out) {
  out.resize(n);
  double m = x[0];
  for (int64_t i = 1; i < n; ++i) m = std::max(m, double(x[i]));
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(x[i]) - m);
  const double lse = m + std::log(s);
  for (int64_t i = 0; i < n; ++i) out[i] = double(x[i]) - lse;
}

int64_t argmax(const float* x, int64_t n) { return std::max_element(x, x + n) - x; }

std::string mmlu_subject_text(const eval::MmluSubject& subject) {
  static const char* letters[] = {"A", "B", "C", "D"};
  std::string text = eval::mmlu_header(subject, 5);
  for (const auto& q : subject.test) text += eval::mmlu_question_text(q) + " " + letters[q.answer] + "\n\n";
  return text;
}

std::string default_gguf() {
  if (const char* env = std::getenv("BILLION_SMOLLM2_GGUF")) return env;
  if (const char* home = std::getenv("HOME")) return std::string(home) + "/.cache/billion/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Quantization quality: top-1 agreement, KL and perplexity of int8/int4 against an F32 baseline on MMLU text"};
  std::string model_path = default_gguf(), mmlu_dir = std::string(BILLION_SOURCE_DIR) + "/../shared/data/mmlu", out = "bench-quant-quality.json";
  std::string keep_f32;
  int tokens = 2000, window = 200, threads = 0;
  app.add_option("model", model_path, "A GGUF file (default: $BILLION_SMOLLM2_GGUF or ~/.cache/billion/models/SmolLM2-135M-Instruct.Q4_1.gguf)")
      ->capture_default_str();
  app.add_option("--mmlu", mmlu_dir, "MMLU data folder (dev/, test/)")->capture_default_str();
  app.add_option("--tokens", tokens, "Scored next-token predictions in all")->capture_default_str();
  app.add_option("--window", window, "Predictions per window (each window is window+1 tokens from a fresh cache)")->capture_default_str();
  app.add_option("--threads", threads, "Threads (0 = physical cores)")->capture_default_str();
  app.add_option("--keep-f32", keep_f32, "Write the dequantized F32 GGUF here and keep it (default: a temporary file, removed)");
  app.add_option("--out", out, "JSON output file")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (model_path.empty() || !fs::exists(model_path))
      fail(model_path, "no such model file: run ./setup.sh (SmolLM2-135M-Instruct.Q4_1.gguf) or pass a GGUF path");
    if (tokens <= 0 || window <= 0) throw Error("--tokens and --window must be positive");
    ThreadPool pool(threads);

    // The baseline: every matrix dequantized to F32, written once, then mapped by three loads.
    const std::string f32_path = keep_f32.empty()
                                     ? (fs::temp_directory_path() / ("bench_quant_quality_" + std::to_string(::getpid()) + ".gguf")).string()
                                     : keep_f32;
    auto t0 = Clock::now();
    QuantizeFileOptions qo;
    qo.type = GgmlType::F32;
    qo.threads = threads;
    quantize_model_file(model_path, f32_path, qo);
    std::fprintf(stderr, "wrote the F32 baseline %s (%.0f MB) in %.1f s\n", f32_path.c_str(), fs::file_size(f32_path) / 1e6,
                 std::chrono::duration<double>(Clock::now() - t0).count());

    std::vector<Variant> variants(4);
    variants[0].name = "f32";
    variants[0].weights = "F32 (dequantized file)";
    variants[1].name = "int8";
    variants[1].weights = "Q8_0 (--quantize int8)";
    variants[2].name = "int4";
    variants[2].weights = "Q4_0 (--quantize int4)";
    variants[3].name = "file";
    variants[3].weights = "Q4_1 (the file as shipped)";
    variants[0].model = Model::load(f32_path);
    variants[1].model = Model::load(f32_path, {LoadQuantization::Int8});
    variants[2].model = Model::load(f32_path, {LoadQuantization::Int4});
    variants[3].model = Model::load(model_path);
    if (keep_f32.empty()) fs::remove(f32_path);  // the mappings stay valid until the models are freed

    // The text: one tokenized MMLU prompt per default subject.
    const Model& base = *variants[0].model;
    std::vector<std::vector<int32_t>> subject_tokens;
    for (const auto& name : eval::mmlu_default_subjects()) {
      auto ids = base.tokenizer().encode(mmlu_subject_text(eval::load_mmlu_subject(mmlu_dir, name)));
      subject_tokens.emplace_back(ids.begin(), ids.end());
    }
    const int n_subjects = int(subject_tokens.size());
    const int n_windows = (tokens + window - 1) / window;
    const int64_t vocab = base.spec().vocab_size;

    std::vector<double> lp_base, lp_var;
    std::vector<std::vector<float>> logits(variants.size());
    nlohmann::json windows_json = nlohmann::json::array();
    int scored_total = 0;
    for (int w = 0; w < n_windows; ++w) {
      const int scored = std::min(window, tokens - scored_total);
      const auto& src = subject_tokens[w % n_subjects];
      const size_t offset = size_t(w / n_subjects) * size_t(window);
      if (offset + scored + 1 > src.size())
        fail(mmlu_dir, "subject {} has only {} tokens, window {} needs {}", eval::mmlu_default_subjects()[w % n_subjects], src.size(), w,
             offset + scored + 1);
      std::vector<int32_t> ids(src.begin() + offset, src.begin() + offset + scored + 1);  // [scored + 1]
      for (size_t v = 0; v < variants.size(); ++v) {
        KVCache cache = variants[v].model->decoder().make_cache(int(ids.size()), KVType::F16);
        auto t = Clock::now();
        variants[v].model->decoder().forward(ids, cache, logits[v], LogitsFor::All, pool);  // [scored + 1, vocab]
        variants[v].seconds += std::chrono::duration<double>(Clock::now() - t).count();
      }
      nlohmann::json wj = {{"subject", eval::mmlu_default_subjects()[w % n_subjects]}, {"offset", offset}, {"predictions", scored}};
      for (int t = 0; t < scored; ++t) {  // position t predicts ids[t + 1]
        const float* b = logits[0].data() + int64_t(t) * vocab;
        log_softmax(b, vocab, lp_base);
        const int64_t top_base = argmax(b, vocab);
        for (size_t v = 0; v < variants.size(); ++v) {
          const float* x = logits[v].data() + int64_t(t) * vocab;
          log_softmax(x, vocab, lp_var);
          double kl = 0;
          for (int64_t i = 0; i < vocab; ++i) kl += std::exp(lp_base[i]) * (lp_base[i] - lp_var[i]);
          kl = std::max(kl, 0.0);  // rounding can leave -1e-17 for identical rows
          Variant& V = variants[v];
          ++V.positions;
          V.agree += argmax(x, vocab) == top_base;
          V.kl_sum += kl;
          V.kl_max = std::max(V.kl_max, kl);
          V.nll_sum -= lp_var[ids[t + 1]];
        }
      }
      scored_total += scored;
      windows_json.push_back(wj);
      std::fprintf(stderr, "window %d/%d (%s): %d predictions\n", w + 1, n_windows, wj["subject"].get<std::string>().c_str(), scored);
    }

    std::printf("| variant | weights | top-1 agreement | mean KL | max KL | perplexity | forward s |\n|---|---|---|---|---|---|---|\n");
    nlohmann::json vj = nlohmann::json::array();
    for (const auto& V : variants) {
      const double agreement = double(V.agree) / double(V.positions), mean_kl = V.kl_sum / double(V.positions);
      const double ppl = std::exp(V.nll_sum / double(V.positions));
      std::printf("| %s | %s | %.4f | %.5f | %.4f | %.3f | %.1f |\n", V.name.c_str(), V.weights.c_str(), agreement, mean_kl, V.kl_max, ppl,
                  V.seconds);
      vj.push_back({{"name", V.name},
                    {"weights", V.weights},
                    {"weight_bytes_mapped", V.model->decoder().weights().mapped_bytes},
                    {"weight_bytes_owned", V.model->decoder().weights().owned_bytes},
                    {"top1_agreement", agreement},
                    {"mean_kl", mean_kl},
                    {"max_kl", V.kl_max},
                    {"perplexity", ppl},
                    {"forward_seconds", V.seconds}});
    }
    std::printf("\n%d predictions in %d windows of MMLU text (%d subjects); KL(f32 ‖ variant) in nats; %d threads\n", scored_total,
                n_windows, std::min(n_windows, n_subjects), pool.size());
    nlohmann::json j = {{"model", model_path},
                        {"baseline", "f32: the file's matrices dequantized to F32"},
                        {"text", "MMLU 5-shot harness prompt + answered test questions, per default subject"},
                        {"mmlu", mmlu_dir},
                        {"predictions", scored_total},
                        {"window", window},
                        {"windows", windows_json},
                        {"kv", "f16"},
                        {"threads", pool.size()},
                        {"variants", vj}};
    std::ofstream(out) << j.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_quant_quality: %s\n", e.what());
    return 1;
  }
  return 0;
}
