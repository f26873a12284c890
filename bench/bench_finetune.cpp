// LoRA training throughput: tokens per second of optimizer steps (forward + backward + AdamW) for
// a model shape, against PyTorch + PEFT on the same CPU (tools/bench_finetune_peer.py, run from
// here when the reference Python exists), same shape, data layout and settings: batch × seq-len
// tokens per step (first half of every sequence masked as prompt), LoRA r=8 on q_proj,v_proj.
//   bench_finetune [--model PATH | --shape smollm2|tinyllama] [--steps 3] [--batch 4] [--seq 256]
//                  [--threads N] [--recompute] [--python PY] [--out bench-finetune.json]
// --shape builds random F32 weights from the shared config (no download); numbers for a shape
// measured on a few steps are extrapolated to the seed run (100 samples × 3 epochs, labelled).
// Prints a Markdown table and writes JSON.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/process_memory.h"
#include "formats/hf_folder.h"
#include "model/model.h"
#include "train/trainer.h"

using namespace billion;
using namespace billion::train;

namespace {

struct RandomWeights {
  ModelWeights w;
  std::vector<std::vector<float>> storage;
  kernels::WeightView matrix(std::mt19937& rng, int64_t rows, int64_t cols) {
    std::normal_distribution<float> d(0.0f, 0.02f);
    storage.emplace_back(size_t(rows * cols));
    for (auto& x : storage.back()) x = d(rng);
    return {GgmlType::F32, storage.back().data(), rows, cols, size_t(cols) * 4};
  }
};

std::unique_ptr<RandomWeights> random_weights(const ArchitectureSpec& s) {
  auto r = std::make_unique<RandomWeights>();
  std::mt19937 rng(1);
  const int64_t H = s.hidden, qd = int64_t(s.n_heads) * s.head_dim, kvd = int64_t(s.n_kv_heads) * s.head_dim;
  r->w.token_embedding = r->matrix(rng, s.vocab_size, H);
  r->w.final_norm_w.assign(H, 1.0f);
  r->w.output.weight = s.tied_embeddings ? r->w.token_embedding : r->matrix(rng, s.vocab_size, H);
  for (int l = 0; l < s.n_layers; ++l) {
    LayerWeights L;
    L.attn_norm_w.assign(H, 1.0f);
    L.ffn_norm_w.assign(H, 1.0f);
    L.q.weight = r->matrix(rng, qd, H);
    L.k.weight = r->matrix(rng, kvd, H);
    L.v.weight = r->matrix(rng, kvd, H);
    L.o.weight = r->matrix(rng, H, qd);
    L.gate.weight = r->matrix(rng, s.intermediate, H);
    L.up.weight = r->matrix(rng, s.intermediate, H);
    L.down.weight = r->matrix(rng, H, s.intermediate);
    r->w.layers.push_back(std::move(L));
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, shape = "smollm2", python = "/root/.cache/billion/refenv/bin/python", out = "bench-finetune.json";
  int steps = 3, batch = 4, seq = 256, threads = 0;
  bool recompute = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--model") model_path = next();
    else if (a == "--shape") shape = next();
    else if (a == "--steps") steps = std::stoi(next());
    else if (a == "--batch") batch = std::stoi(next());
    else if (a == "--seq") seq = std::stoi(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--recompute") recompute = true;
    else if (a == "--python") python = next();
    else if (a == "--out") out = next();
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  try {
    ThreadPool pool(threads);
    std::unique_ptr<Model> model;
    std::unique_ptr<RandomWeights> rnd;
    ArchitectureSpec spec;
    const ModelWeights* weights;
    std::string config_dir = std::string(BILLION_SOURCE_DIR) + "/../shared/models/" + (shape == "tinyllama" ? "tinyllama" : "smollm2-135m");
    if (!model_path.empty()) {
      model = Model::load(model_path);
      spec = model->spec();
      weights = &model->decoder().weights();
    } else {
      spec = spec_from_hf_config(read_json_file(config_dir + "/config.json"), config_dir);
      rnd = random_weights(spec);
      weights = &rnd->w;
    }
    const auto t0 = std::chrono::steady_clock::now();
    FrozenBase base(spec, *weights, pool);
    LoraConfig lc;
    auto set = create_lora(spec, *weights, lc, 1);
    for (auto& m : set.modules)  // non-zero B so every gradient path does real work
      for (auto& b : m.b) b = 0.01f;
    TrainingModel<float> tm(base, set, recompute, 1);
    AdamW adam(tm.params(), {});
    std::mt19937 rng(3);
    std::vector<TokenizedExample> ex(batch);
    for (auto& e : ex) {
      e.ids.resize(seq);
      e.labels.resize(seq);
      for (int t = 0; t < seq; ++t) {
        e.ids[t] = int32_t(rng() % uint32_t(spec.vocab_size));
        e.labels[t] = t < seq / 2 ? -100 : e.ids[t];
      }
    }
    std::vector<const TokenizedExample*> ptrs;
    for (auto& e : ex) ptrs.push_back(&e);
    std::vector<PackedBatch> micro{pack_examples(ptrs)};
    const double setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    optimizer_step(tm, adam, micro, 1e-4, 1.0, pool);  // warm-up step, not timed
    const auto t1 = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) optimizer_step(tm, adam, micro, 1e-4, 1.0, pool);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    const double tps = double(steps) * batch * seq / secs;
    const uint64_t rss = peak_rss_bytes();
    nlohmann::json j = {{"shape", model_path.empty() ? shape + " (random F32 weights)" : model_path},
                        {"batch", batch}, {"seq", seq}, {"steps", steps}, {"threads", pool.size()}, {"recompute", recompute},
                        {"billion_tokens_per_second", tps}, {"billion_setup_seconds", setup_s}, {"billion_peak_rss_bytes", rss},
                        {"activation_bytes", tm.activation_bytes()}};
    // The PyTorch + PEFT side, same shape and batch.
    double torch_tps = 0;
    const std::string peer = std::string(BILLION_SOURCE_DIR) + "/tools/bench_finetune_peer.py";
    if (std::filesystem::exists(python) && std::filesystem::exists(peer)) {
      const std::string json_path = std::filesystem::temp_directory_path().string() + "/bench_finetune_peer.json";
      std::string cmd = python + " " + peer + " --config " + config_dir + " --steps " + std::to_string(steps) + " --batch " +
                        std::to_string(batch) + " --seq " + std::to_string(seq) + " --threads " + std::to_string(pool.size()) +
                        " --out " + json_path + " 2>/dev/null";
      if (std::system(cmd.c_str()) == 0) {
        auto p = read_json_file(json_path);
        torch_tps = p["tokens_per_second"].get<double>();
        j["pytorch_peft"] = p;
      }
    }
    // Seed run estimate: 100 alpaca samples × 3 epochs at this rate, ~170 tokens per sample
    // for SmolLM2's tokenizer (measured on the shared alpaca file).
    const double seed_tokens = 100.0 * 3 * 170;
    j["seed_run_estimate_seconds"] = seed_tokens / tps;
    std::printf("| engine | shape | batch×seq | threads | train tok/s | peak RSS |\n|---|---|---|---|---|---|\n");
    std::printf("| billion | %s | %d×%d | %d | %.1f | %.0f MiB |\n", j["shape"].get<std::string>().c_str(), batch, seq, pool.size(), tps,
                rss / 1048576.0);
    if (torch_tps > 0)
      std::printf("| PyTorch+PEFT | same shape | %d×%d | %d | %.1f | %.0f MiB |\n", batch, seq, pool.size(), torch_tps,
                  j["pytorch_peft"].value("peak_rss_bytes", 0.0) / 1048576.0);
    std::printf("\nseed run (100 samples × 3 epochs ≈ %.0f tokens) at this rate: %.1f min (extrapolated)\n", seed_tokens,
                seed_tokens / tps / 60);
    std::ofstream(out) << j.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_finetune: %s\n", e.what());
    return 1;
  }
  return 0;
}
