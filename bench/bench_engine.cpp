// End-to-end engine speed: prefill (default 512 tokens, one forward call) and decode (default
// 128 tokens, one forward call per token, greedy) on any GGUF file or model folder, one warm-up
// then N runs (default 5), mean ± std of tokens/s, and peak memory (getrusage ru_maxrss and
// /proc/self/status VmHWM). Prints a Markdown table and writes JSON (--out).
//
// Memory bound (issue #3): weights are mapped, not copied, so peak resident memory (VmHWM) must
// stay under file size + KV cache + 50 MB (10^6 bytes), the KV cache being the largest one the
// run allocates (max(prompt, gen + 1) positions, K and V, of --kv's type). A line under the table
// and the JSON's "memory_bound" say whether it holds. With --random-shape the bound also has to
// cover the GGUF writer's buffers (one tensor at a time), so it is only meaningful for real files.
//
// --random-shape CONFIG.json --type f16|q8_0|q4_0|q4_k writes a GGUF with random weights and
// the exact tensor shapes of a Hugging Face config (Llama, GPT-NeoX, StableLM) through the
// streaming GgufWriter, then benchmarks it: speed does not depend on the values, so no
// multi-GB download is needed to measure a 1B shape. Values are uniform in a realistic range
// (matrices ±0.04, norm gains ~1); Q4_K blocks get random nibbles with small finite scales.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/process_memory.h"
#include "core/thread_pool.h"
#include "formats/gguf_writer.h"
#include "formats/hf_folder.h"
#include "kernels/quant.h"
#include "model/architecture.h"
#include "model/model.h"

using namespace billion;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------------------------------------
// Random-weight GGUF of a config's shapes.

uint64_t mix(uint64_t x) {  // splitmix64: a counter-based generator, so rows fill in parallel
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
float uniform(uint64_t key, float amplitude) { return amplitude * (static_cast<float>(mix(key) >> 40) / float(1 << 24) * 2 - 1); }

std::vector<std::string> byte_tokens() {  // GPT-2's byte → printable character table
  std::vector<int> bs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  std::vector<int> cp(256, 0);
  std::vector<bool> used(256, false);
  for (int b : bs) cp[b] = b, used[b] = true;
  int n = 0;
  for (int b = 0; b < 256; ++b)
    if (!used[b]) cp[b] = 256 + n++;
  std::vector<std::string> out;
  for (int b = 0; b < 256; ++b) {
    int c = cp[b];
    std::string s;
    if (c < 0x80) s += char(c);
    else s += char(0xC0 | (c >> 6)), s += char(0x80 | (c & 0x3F));
    out.push_back(s);
  }
  return out;
}

class RandomGguf {
 public:
  RandomGguf(const ArchitectureSpec& spec, GgmlType type, ThreadPool& pool) : spec_(spec), type_(type), pool_(pool) {}

  void write(const std::string& path) {
    const std::string arch = spec_.family;
    write_spec_to_gguf(spec_, w_);
    w_.set_string("general.name", "random " + arch);
    // A byte-level tokenizer (the loader needs one): 256 byte tokens, the rest placeholders.
    auto tokens = byte_tokens();
    std::vector<int32_t> types(spec_.vocab_size, 4);
    for (int i = 0; i < 256; ++i) types[i] = 1;
    for (int i = 256; i < spec_.vocab_size; ++i) tokens.push_back("[PAD" + std::to_string(i) + "]");
    w_.set_string("tokenizer.ggml.model", "gpt2");
    w_.set_string_array("tokenizer.ggml.tokens", tokens);
    w_.set_i32_array("tokenizer.ggml.token_type", types);
    w_.set_string_array("tokenizer.ggml.merges", {});

    const int64_t h = spec_.hidden, hd = spec_.head_dim, q = int64_t(spec_.n_heads) * hd, kv = int64_t(spec_.n_kv_heads) * hd;
    const int64_t f = spec_.intermediate;
    const bool ln = spec_.norm == NormKind::LayerNorm;
    matrix("token_embd.weight", spec_.vocab_size, h);
    vec("output_norm.weight", h, true);
    if (ln) vec("output_norm.bias", h, false);
    if (!spec_.tied_embeddings) matrix("output.weight", spec_.vocab_size, h);
    if (spec_.llama3_scaling) vec("rope_freqs.weight", spec_.rotary_dims / 2, true);
    for (int i = 0; i < spec_.n_layers; ++i) {
      std::string b = "blk." + std::to_string(i) + ".";
      vec(b + "attn_norm.weight", h, true);
      if (ln) vec(b + "attn_norm.bias", h, false);
      if (!(arch == "stablelm" && spec_.parallel_residual)) {
        vec(b + "ffn_norm.weight", h, true);
        if (ln) vec(b + "ffn_norm.bias", h, false);
      }
      if (arch == "gptneox") {
        matrix(b + "attn_qkv.weight", q + 2 * kv, h);
        vec(b + "attn_qkv.bias", q + 2 * kv, false);
      } else {
        matrix(b + "attn_q.weight", q, h);
        matrix(b + "attn_k.weight", kv, h);
        matrix(b + "attn_v.weight", kv, h);
        if (spec_.qkv_bias) vec(b + "attn_q.bias", q, false), vec(b + "attn_k.bias", kv, false), vec(b + "attn_v.bias", kv, false);
      }
      matrix(b + "attn_output.weight", h, q);
      if (spec_.out_bias) vec(b + "attn_output.bias", h, false);
      if (spec_.qk_layernorm) vec(b + "attn_q_norm.weight", q, true, {uint64_t(hd), uint64_t(spec_.n_heads)}),
                                  vec(b + "attn_k_norm.weight", kv, true, {uint64_t(hd), uint64_t(spec_.n_kv_heads)});
      if (spec_.mlp == MlpKind::SwiGLU) matrix(b + "ffn_gate.weight", f, h);
      matrix(b + "ffn_up.weight", f, h);
      if (spec_.mlp_bias) vec(b + "ffn_up.bias", f, false);
      matrix(b + "ffn_down.weight", h, f);
      if (spec_.mlp_bias) vec(b + "ffn_down.bias", h, false);
    }
    w_.write(path);
  }

 private:
  void vec(const std::string& name, int64_t n, bool gain, std::vector<uint64_t> dims = {}) {
    uint64_t seed = ++counter_;
    if (dims.empty()) dims = {uint64_t(n)};
    w_.add_tensor(name, GgmlType::F32, dims, GgufWriter::TensorProducer([n, gain, seed] {
                    std::vector<uint8_t> out(n * sizeof(float));
                    auto* x = reinterpret_cast<float*>(out.data());
                    for (int64_t i = 0; i < n; ++i) x[i] = (gain ? 1.0f : 0.0f) + uniform(seed << 40 | i, 0.1f);
                    return out;
                  }));
  }

  void matrix(const std::string& name, int64_t rows, int64_t cols) {
    uint64_t seed = ++counter_;
    // Rows that do not fill whole blocks (tiny test configs) fall back to F16.
    GgmlType type = cols % kernels::type_block_elements(type_) == 0 ? type_ : GgmlType::F16;
    ThreadPool* pool = &pool_;
    w_.add_tensor(name, type, {uint64_t(cols), uint64_t(rows)}, GgufWriter::TensorProducer([=] {
                    const size_t row_bytes = kernels::type_row_bytes(type, cols);
                    std::vector<uint8_t> out(row_bytes * rows);  // [rows, row_bytes]
                    pool->parallel_for(rows, [&](int64_t begin, int64_t end) {
                      std::vector<float> x(cols);
                      for (int64_t r = begin; r < end; ++r) {
                        uint8_t* dst = out.data() + r * row_bytes;
                        uint64_t base = (seed << 48) ^ (uint64_t(r) << 20);
                        if (type == GgmlType::Q4_K) {  // no Q4_K quantizer: random blocks, small scales
                          for (size_t k = 0; k < row_bytes; ++k) dst[k] = static_cast<uint8_t>(mix(base + k));
                          for (size_t blk = 0; blk < row_bytes / sizeof(kernels::BlockQ4_K); ++blk) {
                            auto* b = reinterpret_cast<kernels::BlockQ4_K*>(dst) + blk;
                            b->d = f32_to_f16(0.0004f);
                            b->dmin = f32_to_f16(0.0004f);
                          }
                          continue;
                        }
                        for (int64_t c = 0; c < cols; ++c) x[c] = uniform(base + c, 0.04f);
                        kernels::quantize_row(type, x.data(), dst, cols);
                      }
                    });
                    return out;
                  }));
  }

  const ArchitectureSpec& spec_;
  GgmlType type_;
  ThreadPool& pool_;
  GgufWriter w_;
  uint64_t counter_ = 0;
};

GgmlType parse_type(const std::string& t) {
  if (t == "f16") return GgmlType::F16;
  if (t == "q8_0") return GgmlType::Q8_0;
  if (t == "q4_0") return GgmlType::Q4_0;
  if (t == "q4_k") return GgmlType::Q4_K;
  throw Error("--type: " + t + " is not one of f16, q8_0, q4_0, q4_k");
}

// ------------------------------------------------------------------------------------------
// Measuring

struct Stats {
  double mean = 0, std = 0;
  std::vector<double> runs;
};

Stats stats(std::vector<double> v) {
  Stats s;
  s.runs = v;
  for (double x : v) s.mean += x;
  s.mean /= v.size();
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(s.std / (v.size() - 1)) : 0;
  return s;
}

double prefill_tps(Model& m, const std::vector<int32_t>& tokens, KVType kv, ThreadPool& pool) {
  KVCache cache = m.decoder().make_cache(static_cast<int>(tokens.size()), kv);
  std::vector<float> logits;
  auto t0 = Clock::now();
  m.decoder().forward(tokens, cache, logits, LogitsFor::Last, pool);
  return tokens.size() / std::chrono::duration<double>(Clock::now() - t0).count();
}

double decode_tps(Model& m, int n, KVType kv, ThreadPool& pool) {
  KVCache cache = m.decoder().make_cache(n + 1, kv);
  std::vector<float> logits;
  int32_t token = 1;
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    m.decoder().forward({&token, 1}, cache, logits, LogitsFor::Last, pool);
    token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  return n / std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"End-to-end prefill and decode speed of the engine"};
  std::string model_path, random_config, type = "q4_0", out = "bench-engine.json", keep, kv_name = "f16";
  int prompt = 512, gen = 128, runs = 5, threads = 0;
  app.add_option("model", model_path, "A .gguf file or model folder (or use --random-shape)");
  app.add_option("--random-shape", random_config, "A Hugging Face config.json: benchmark random weights of its exact shapes");
  app.add_option("--type", type, "Weight type for --random-shape: f16, q8_0, q4_0, q4_k")->capture_default_str();
  app.add_option("--keep", keep, "Write the random GGUF here and keep it (default: a temporary file, removed)");
  app.add_option("--prompt", prompt, "Prefill tokens")->capture_default_str();
  app.add_option("--gen", gen, "Decode tokens")->capture_default_str();
  app.add_option("--runs", runs, "Measured runs after one warm-up")->capture_default_str();
  app.add_option("--threads", threads, "Threads (0 = physical cores)")->capture_default_str();
  app.add_option("--kv", kv_name, "KV cache type: f16 or f32")->capture_default_str();
  app.add_option("--out", out, "JSON output file")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (model_path.empty() == random_config.empty()) throw Error("give a model or --random-shape CONFIG, not both");
    ThreadPool pool(threads);
    std::string label = model_path;
    bool temporary = false;
    if (!random_config.empty()) {
      auto spec = spec_from_hf_config(read_json_file(random_config), random_config);
      model_path = keep.empty() ? (fs::temp_directory_path() / ("bench_engine_" + std::to_string(::getpid()) + ".gguf")).string() : keep;
      temporary = keep.empty();
      auto t0 = Clock::now();
      RandomGguf(spec, parse_type(type), pool).write(model_path);
      std::fprintf(stderr, "wrote %s (%.0f MB) in %.1f s\n", model_path.c_str(), fs::file_size(model_path) / 1e6,
                   std::chrono::duration<double>(Clock::now() - t0).count());
      label = fs::path(random_config).parent_path().filename().string() + " shape, random " + type;
    }
    KVType kv = kv_name == "f32" ? KVType::F32 : KVType::F16;
    auto model = Model::load(model_path);
    if (temporary) fs::remove(model_path);  // the mapping stays valid until the model is freed
    prompt = std::min(prompt, model->spec().context_length);
    std::vector<int32_t> tokens(prompt);
    for (int i = 0; i < prompt; ++i) tokens[i] = static_cast<int32_t>(mix(i) % model->spec().vocab_size);

    std::vector<double> pp, tg;
    for (int r = 0; r <= runs; ++r) {  // run 0 is the warm-up
      double p = prefill_tps(*model, tokens, kv, pool);
      double d = decode_tps(*model, gen, kv, pool);
      if (r > 0) pp.push_back(p), tg.push_back(d);
    }
    Stats sp = stats(pp), sd = stats(tg);
    struct rusage usage {};
    getrusage(RUSAGE_SELF, &usage);
    uint64_t maxrss_kib = usage.ru_maxrss, hwm_kib = peak_rss_bytes() / 1024;
    // The largest cache of the run: [2 (K, V), layers, positions, kv_dim] elements.
    const auto& arch = model->spec();
    const int kv_positions = std::max(prompt, gen + 1);
    const uint64_t kv_bytes = 2ull * uint64_t(arch.n_layers) * uint64_t(kv_positions) * uint64_t(arch.n_kv_heads) * uint64_t(arch.head_dim) *
                              (kv == KVType::F16 ? 2u : 4u);
    const uint64_t slack_bytes = 50'000'000ull, bound_bytes = model->file_bytes() + kv_bytes + slack_bytes;
    const uint64_t peak_bytes = std::max(hwm_kib, maxrss_kib) * 1024ull;
    const bool bound_holds = peak_bytes <= bound_bytes;

    std::printf("| model | params | weights MB | threads | test | tokens/s |\n|---|---|---|---|---|---|\n");
    const double n_params = static_cast<double>(model->spec().parameter_count());
    std::string params = n_params >= 1e9 ? fmt::format("{:.2f}B", n_params / 1e9) : fmt::format("{:.1f}M", n_params / 1e6);
    double mb = model->file_bytes() / 1e6;
    std::printf("| %s | %s | %.1f | %d | pp%d | %.2f ± %.2f |\n", label.c_str(), params.c_str(), mb, pool.size(), prompt, sp.mean, sp.std);
    std::printf("| %s | %s | %.1f | %d | tg%d | %.2f ± %.2f |\n", label.c_str(), params.c_str(), mb, pool.size(), gen, sd.mean, sd.std);
    std::printf("\npeak RSS: ru_maxrss %.1f MiB, VmHWM %.1f MiB; %d runs after 1 warm-up, KV %s\n", maxrss_kib / 1024.0,
                hwm_kib / 1024.0, runs, kv_name.c_str());
    std::printf("memory bound: peak %.1f MB <= file %.1f MB + KV %.1f MB (%d positions) + 50 MB = %.1f MB: %s\n", peak_bytes / 1e6,
                model->file_bytes() / 1e6, kv_bytes / 1e6, kv_positions, bound_bytes / 1e6, bound_holds ? "holds" : "EXCEEDED");
    nlohmann::json j = {{"model", label},           {"path", random_config.empty() ? model_path : random_config},
                        {"format", model->format()}, {"parameters", model->spec().parameter_count()},
                        {"weight_bytes", model->file_bytes()}, {"threads", pool.size()}, {"kv", kv_name}, {"runs", runs},
                        {"prefill", {{"tokens", prompt}, {"tokens_per_second_mean", sp.mean}, {"tokens_per_second_std", sp.std}, {"runs", sp.runs}}},
                        {"decode", {{"tokens", gen}, {"tokens_per_second_mean", sd.mean}, {"tokens_per_second_std", sd.std}, {"runs", sd.runs}}},
                        {"peak_rss_mib", {{"ru_maxrss", maxrss_kib / 1024.0}, {"vm_hwm", hwm_kib / 1024.0}}},
                        {"memory_bound", {{"peak_bytes", peak_bytes}, {"file_bytes", model->file_bytes()}, {"kv_bytes", kv_bytes},
                                          {"kv_positions", kv_positions}, {"slack_bytes", slack_bytes}, {"bound_bytes", bound_bytes},
                                          {"holds", bound_holds}}}};
    std::ofstream(out) << j.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_engine: %s\n", e.what());
    return 1;
  }
  return 0;
}
