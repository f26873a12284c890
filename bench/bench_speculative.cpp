// Speculative-decoding benchmark: plain decoding of the target against speculative decoding with
// a draft model or prompt lookup, on the same prompts and settings in the same process, for
// several K. Prints a table and writes JSON. A second mode writes random-weight GGUF models of a
// real model's shape (config.json + tokenizer.model from ../shared/models/<name>), for the
// large-target / small-draft measurements when the real weights are not at hand.
//
//   bench_speculative make-random --config DIR --type f16|q4_0 --out FILE [--seed S]
//   bench_speculative run --target PATH --draft PATH|lookup [--draft-quantize int4|int8|f32]
//       [--suite repeat|open] [--chat] [-k 1,2,4] [-n 64] [--threads T] [--prompts N]
//       [--label TEXT] [--json FILE] [--adaptive]
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/half.h"
#include "formats/gguf_writer.h"
#include "formats/hf_folder.h"
#include "generate/generator.h"
#include "generate/lookup_draft.h"
#include "generate/speculative.h"
#include "kernels/quant.h"
#include "model/architecture.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/sentencepiece_model.h"

using namespace billion;

namespace {

std::map<std::string, std::string> parse_flags(int argc, char** argv, int first) {
  std::map<std::string, std::string> f;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("-", 0) != 0) throw Error("unexpected argument " + a);
    if (a == "--chat" || a == "--adaptive") {
      f[a] = "1";
      continue;
    }
    if (i + 1 >= argc) throw Error(a + " needs a value");
    f[a] = argv[++i];
  }
  return f;
}

std::string flag(const std::map<std::string, std::string>& f, const std::string& k, const std::string& fallback) {
  auto it = f.find(k);
  return it == f.end() ? fallback : it->second;
}

// ---- random-weight models ----

void make_random(const std::map<std::string, std::string>& f) {
  const std::string dir = flag(f, "--config", ""), out = flag(f, "--out", ""), type_name = flag(f, "--type", "f16");
  if (dir.empty() || out.empty()) throw Error("make-random needs --config DIR and --out FILE");
  const uint32_t seed = std::stoul(flag(f, "--seed", "1"));
  auto config = read_json_file(dir + "/config.json");
  ArchitectureSpec s = spec_from_hf_config(config, dir + "/config.json");
  if (s.family != "llama") fail(dir, "make-random writes llama-family shapes only (got {})", s.family);
  const GgmlType type = type_name == "q4_0" ? GgmlType::Q4_0 : type_name == "f16" ? GgmlType::F16 : GgmlType::F32;
  const double init = config.value("initializer_range", 0.02);

  GgufWriter w;
  write_spec_to_gguf(s, w);
  w.set_string("general.name", "random weights, shape of " + dir);
  // The real vocabulary (SentencePiece), as llama.cpp's converter writes it.
  auto sp = read_sentencepiece_model(dir + "/tokenizer.model");
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (const auto& p : sp.pieces) {
    tokens.push_back(p.piece);
    scores.push_back(p.score);
    types.push_back(p.type);
  }
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_f32_array("tokenizer.ggml.scores", scores);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.bos_token_id", config.value("bos_token_id", 1));
  w.set_u32("tokenizer.ggml.eos_token_id", config.value("eos_token_id", 2));
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);

  // Each tensor is produced while writing (streamed), from its own seed: uniform with the
  // initializer's standard deviation.
  uint32_t tensor_seed = seed;
  auto add = [&](const std::string& name, uint64_t cols, uint64_t rows, GgmlType t, float offset = 0) {
    const uint32_t my_seed = tensor_seed++;
    const float a = static_cast<float>(init * std::sqrt(3.0));
    std::vector<uint64_t> dims = rows == 1 ? std::vector<uint64_t>{cols} : std::vector<uint64_t>{cols, rows};
    w.add_tensor(name, t, dims, [=]() {
      std::mt19937 g(my_seed);
      std::vector<float> row(cols);
      const size_t row_bytes = kernels::type_row_bytes(t, cols);
      std::vector<uint8_t> bytes(row_bytes * rows);
      for (uint64_t r = 0; r < rows; ++r) {
        for (auto& x : row) x = offset + (offset != 0 ? 0.0f : a * (2.0f * (g() / 4294967296.0f) - 1.0f));
        uint8_t* dst = bytes.data() + r * row_bytes;
        if (t == GgmlType::F32) std::memcpy(dst, row.data(), row_bytes);
        else if (t == GgmlType::F16) for (uint64_t c = 0; c < cols; ++c) { uint16_t h = f32_to_f16(row[c]); std::memcpy(dst + 2 * c, &h, 2); }
        else kernels::quantize_row(t, row.data(), dst, cols);
      }
      return bytes;
    });
  };
  const uint64_t h = s.hidden, q = uint64_t(s.n_heads) * s.head_dim, kv = uint64_t(s.n_kv_heads) * s.head_dim, ff = s.intermediate;
  const GgmlType emb = type == GgmlType::Q4_0 ? GgmlType::F16 : type;  // embeddings stay float (row lookups)
  add("token_embd.weight", h, s.vocab_size, emb);
  add("output_norm.weight", h, 1, GgmlType::F32, 1.0f);
  add("output.weight", h, s.vocab_size, type == GgmlType::Q4_0 ? GgmlType::Q4_0 : type);
  for (int i = 0; i < s.n_layers; ++i) {
    auto n = [i](const char* suffix) { return fmt::format("blk.{}.{}", i, suffix); };
    add(n("attn_norm.weight"), h, 1, GgmlType::F32, 1.0f);
    add(n("attn_q.weight"), h, q, type);
    add(n("attn_k.weight"), h, kv, type);
    add(n("attn_v.weight"), h, kv, type);
    add(n("attn_output.weight"), q, h, type);
    add(n("ffn_norm.weight"), h, 1, GgmlType::F32, 1.0f);
    add(n("ffn_gate.weight"), h, ff, type);
    add(n("ffn_up.weight"), h, ff, type);
    add(n("ffn_down.weight"), ff, h, type);
  }
  auto t0 = std::chrono::steady_clock::now();
  w.write(out);
  std::printf("wrote %s (%s, %.2f B parameters) in %.0f s\n", out.c_str(), type_name.c_str(), s.parameter_count() / 1e9,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// ---- the benchmark ----

// Prompts whose answers repeat their input (what prompt lookup exploits) and open-ended ones.
const std::vector<std::string> kRepeatPrompts{
    "Summarise the following text in two sentences, reusing its wording.\n\nText: The city council met on Tuesday to discuss "
    "the new bicycle lanes on Main Street. The council approved the plan to build protected bicycle lanes on Main Street "
    "from the river to the train station, and construction of the bicycle lanes will start in the spring.\n\nSummary:",
    "Rename the variable `count` to `total` in this Python code and return the full code.\n\n```python\ndef count_words(lines):\n"
    "    count = 0\n    for line in lines:\n        count += len(line.split())\n    return count\n```\n",
    "Fix the typo in this sentence and repeat it: The quick brown fox jumpped over the lazy dog while the farmer watched "
    "the quick brown fox from the porch.",
    "Add a docstring to this function and return the whole function.\n\n```python\ndef area(width, height):\n    "
    "if width < 0 or height < 0:\n        raise ValueError(\"negative size\")\n    return width * height\n```\n",
};
const std::vector<std::string> kOpenPrompts{
    "Write a short story about a robot who learns to paint.",
    "Explain why the sky is blue.",
    "List five ideas for a weekend trip.",
    "What is the difference between a list and a tuple in Python?",
};

std::vector<int> parse_ks(const std::string& text) {
  std::vector<int> ks;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) ks.push_back(std::stoi(part));
  return ks;
}

void run_bench(const std::map<std::string, std::string>& f) {
  const std::string target_path = flag(f, "--target", ""), draft_name = flag(f, "--draft", "lookup");
  if (target_path.empty()) throw Error("run needs --target PATH");
  const std::string suite = flag(f, "--suite", "repeat"), label = flag(f, "--label", draft_name);
  const std::vector<int> ks = parse_ks(flag(f, "-k", "1,2,4"));
  const int n_tokens = std::stoi(flag(f, "-n", "64"));
  const bool chat = f.count("--chat"), adaptive = f.count("--adaptive");
  ThreadPool pool(std::stoi(flag(f, "--threads", "0")));

  auto target = Model::load(target_path);
  std::unique_ptr<Model> draft;
  if (draft_name != "lookup") {
    draft = Model::load(draft_name, {parse_load_quantization(flag(f, "--draft-quantize", ""))});
    check_tokenizers_compatible(draft->tokenizer(), target->tokenizer(), draft_name, target_path);
  }
  auto texts = suite == "open" ? kOpenPrompts : kRepeatPrompts;
  texts.resize(std::min<size_t>(texts.size(), std::stoul(flag(f, "--prompts", "4"))));
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& t : texts) {
    if (chat && target->chat_template()) {
      ChatTemplateInput in;
      in.messages.push_back({"user", t});
      in.add_generation_prompt = true;
      in.bos_token = target->bos_text();
      in.eos_token = target->eos_text();
      prompts.push_back(target->tokenizer().encode(render_chat_template(*target->chat_template(), in), {.add_special = false, .parse_special = true}));
    } else {
      prompts.push_back(target->tokenizer().encode(t));
    }
  }
  const int capacity = std::min(target->spec().context_length, 2048);
  auto cache = target->decoder().make_cache(capacity);

  // Plain decoding, once (greedy: the same for every K); a short untimed warm-up first.
  GenerationOptions plain;
  plain.max_new_tokens = n_tokens;
  {
    std::vector<int32_t> cached;
    GenerationOptions w = plain;
    w.max_new_tokens = 2;
    generate(*target, cache, cached, prompts[0], w, pool);
  }
  std::vector<std::vector<int32_t>> plain_tokens;
  double plain_n = 0, plain_s = 0;
  for (const auto& p : prompts) {
    std::vector<int32_t> cached;
    auto r = generate(*target, cache, cached, p, plain, pool);
    plain_tokens.push_back(r.tokens);
    plain_n += r.tokens.size();
    plain_s += r.decode_seconds;
  }
  const double plain_rate = plain_n / plain_s;

  std::printf("target %s | draft %s%s | suite %s | %zu prompts × %d tokens | %d threads\n", target_path.c_str(), draft_name.c_str(),
              draft ? fmt::format(" ({})", flag(f, "--draft-quantize", "as stored")).c_str() : "", suite.c_str(), prompts.size(), n_tokens,
              pool.size());
  std::printf("%-22s %3s %7s %8s %8s %9s %9s %8s %7s %5s\n", "config", "K", "accept", "acc/pass", "tok/pass", "plain t/s", "spec t/s",
              "speedup", "draft%", "same");
  nlohmann::json rows = nlohmann::json::array();
  for (int k : ks) {
    SpeculativeStats total;
    int same = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      std::unique_ptr<Drafter> drafter;
      if (draft) drafter = std::make_unique<ModelDrafter>(*draft, capacity, KVType::F16, SamplingOptions{}, pool);
      else drafter = std::make_unique<LookupDrafter>();
      SpeculativeOptions o;
      o.k = k;
      o.adaptive = adaptive;
      o.max_new_tokens = n_tokens;
      auto r = speculative_generate(*target, cache, *drafter, prompts[i], o, pool);
      total.add(r.stats);
      same += r.tokens == plain_tokens[i];
    }
    const double rate = total.decode_tokens_per_second();
    const double decode_s = total.total_seconds - total.prefill_seconds;
    std::printf("%-22s %3d %6.1f%% %8.2f %8.2f %9.2f %9.2f %7.2fx %6.1f%% %2d/%zu\n", label.c_str(), k, 100 * total.acceptance_rate(),
                total.accepted_per_pass(), total.tokens_per_pass(), plain_rate, rate, rate / plain_rate,
                decode_s > 0 ? 100 * total.draft_seconds / decode_s : 0.0, same, prompts.size());
    std::fflush(stdout);
    nlohmann::json by_pos = nlohmann::json::array();
    for (size_t i = 0; i < total.drafted_at.size(); ++i) by_pos.push_back(total.drafted_at[i] ? double(total.accepted_at[i]) / total.drafted_at[i] : 0.0);
    rows.push_back({{"label", label}, {"k", k}, {"adaptive", adaptive}, {"mean_k", total.mean_k()}, {"acceptance_rate", total.acceptance_rate()},
                    {"accepted_per_pass", total.accepted_per_pass()}, {"tokens_per_pass", total.tokens_per_pass()},
                    {"acceptance_by_position", by_pos}, {"plain_tokens_per_second", plain_rate}, {"speculative_tokens_per_second", rate},
                    {"speedup", rate / plain_rate}, {"draft_seconds", total.draft_seconds}, {"target_seconds", total.target_seconds},
                    {"identical_prompts", same}, {"prompts", prompts.size()}});
  }
  const std::string json_path = flag(f, "--json", "");
  if (!json_path.empty()) {
    nlohmann::json j{{"bench", "speculative"}, {"target", target_path}, {"draft", draft_name},
                     {"draft_quantize", flag(f, "--draft-quantize", "")}, {"suite", suite}, {"chat", chat},
                     {"max_new_tokens", n_tokens}, {"threads", pool.size()}, {"rows", rows}};
    std::ofstream(json_path) << j.dump(2) << "\n";
    std::printf("wrote %s\n", json_path.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "make-random") make_random(parse_flags(argc, argv, 2));
    else if (mode == "run") run_bench(parse_flags(argc, argv, 2));
    else {
      std::fprintf(stderr, "usage: bench_speculative make-random --config DIR --type f16|q4_0 --out FILE\n"
                           "       bench_speculative run --target PATH --draft PATH|lookup [--draft-quantize int4] [--suite repeat|open]\n"
                           "             [--chat] [-k 1,2,4] [-n 64] [--threads T] [--prompts N] [--label TEXT] [--json FILE] [--adaptive]\n");
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
