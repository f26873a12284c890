// Matmul throughput per weight type at TinyLlama-1.1B shapes: GB/s of weights streamed and
// GFLOP/s, for decode (1 token) and prefill (512 tokens), 1 and 2 threads, with the active
// kernels (BILLION_KERNELS=scalar to measure the reference). Prints a Markdown table and writes
// JSON (--out, default bench-kernels.json). Matrices are laid out as the loader would for the
// active table (Q4_0/Q8_0/Q4_K/Q6_K, and F16 in runs of four rows, interleaved where it wants
// them, kernels::wants_interleaved;
// Q4_1 in ggml's order where interleave_q4_1_ggml_at_load asks for it);
// --plain keeps the file's layout, to compare the two. --ggml-order lays Q8_0 out as the loader
// does a tied Q8_0 output matrix (WeightLayout::Interleaved16Ggml, where the table's
// interleave_q8_0_ggml_at_load asks for it, else the file's rows); shapes 4 and 5 are such
// output matrices (SmolLM2, Llama-3.2), not TinyLlama's.
//
// Decode is memory-bound, so the weights must come from DRAM as in a real forward pass (22
// layers × ~40 MB do not fit any cache): a small matrix is replicated into enough copies to
// exceed 128 MiB and the runs cycle through them.
//
// --attention N1,N2,...: instead of the matmuls, attention_f16 of one token over an F16 cache of
// N positions, one layer of TinyLlama's heads (32 query heads over 4 KV heads, head_dim 64), in
// both summation orders (Vec: a decode step; Tiled: a prefill batch), one query head per call
// ("x1") or the eight of a KV head ("x8"), one thread: microseconds per layer and GFLOP/s
// (4·head_dim·N per query head: q·k and p·v).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/half.h"
#include "core/huge_page_buffer.h"
#include "core/thread_pool.h"
#include "kernels/interleave.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"

using namespace billion;
using namespace billion::kernels;

namespace {

struct Shape {
  int64_t rows, cols;
  const char* what;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

GgmlType parse_type(const std::string& name) {
  for (uint32_t id = 0; id < 40; ++id)
    if (auto t = ggml_type_traits(id); t && name == t->name) return t->type;
  std::fprintf(stderr, "unknown type %s\n", name.c_str());
  std::exit(2);
}

// One matrix's bytes: quantized from Gaussian rows where we have a quantizer (so the values are
// realistic), random blocks with small finite scales for K-quants.
std::vector<uint8_t> make_matrix(GgmlType type, int64_t rows, int64_t cols) {
  const size_t rb = type_row_bytes(type, cols);
  std::vector<uint8_t> w(rb * rows);
  std::mt19937 rng(1);
  if (type == GgmlType::Q4_K || type == GgmlType::Q5_K || type == GgmlType::Q6_K) {
    for (auto& b : w) b = static_cast<uint8_t>(rng());
    const uint16_t d = f32_to_f16(0.01f);
    const size_t bb = type_block_bytes(type);
    for (size_t off = 0; off < w.size(); off += bb) {
      if (type == GgmlType::Q6_K) {
        std::memcpy(&w[off + 208], &d, 2);
      } else {
        std::memcpy(&w[off], &d, 2);
        std::memcpy(&w[off + 2], &d, 2);
      }
    }
    return w;
  }
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : row) v = normal(rng);
    quantize_row(type, row.data(), w.data() + r * rb, cols);
  }
  return w;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// --attention: one layer's attention for one token, per cache length, both orders.
void bench_attention(const KernelTable& k, const std::vector<std::string>& positions, double min_seconds,
                     nlohmann::json& results) {
  constexpr int64_t kHeads = 32, kKvHeads = 4, kHeadDim = 64, kKvStride = kKvHeads * kHeadDim;
  std::printf("| attention | order | positions | us/layer | GFLOP/s |\n|---|---|---|---|---|\n");
  for (const std::string& ps : positions) {
    const int64_t n_pos = std::stoll(ps);
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> q(kHeads * kHeadDim), out(kHeads * kHeadDim), scratch(n_pos);
    std::vector<uint16_t> kc(n_pos * kKvStride), vc(n_pos * kKvStride);
    for (auto& x : q) x = normal(rng);
    for (auto& x : kc) x = f32_to_f16(normal(rng));
    for (auto& x : vc) x = f32_to_f16(normal(rng));
    for (AttentionOrder order : {AttentionOrder::Vec, AttentionOrder::Tiled})
      for (int64_t per_call : {int64_t{1}, kHeads / kKvHeads}) {  // one query head per call, or a KV head's
        const std::string name = std::string(order == AttentionOrder::Vec ? "vec" : "tiled") + " x" + std::to_string(per_call);
        std::vector<double> times;
        const auto start = std::chrono::steady_clock::now();
        do {
          const auto t0 = std::chrono::steady_clock::now();
          for (int64_t h = 0; h < kHeads; h += per_call) {
            const int64_t g = h / (kHeads / kKvHeads);
            k.attention_f16(q.data() + h * kHeadDim, kHeadDim, per_call, kHeadDim, kc.data() + g * kHeadDim,
                            vc.data() + g * kHeadDim, kKvStride, n_pos, 0.125f, out.data() + h * kHeadDim, kHeadDim,
                            scratch.data(), order);
          }
          times.push_back(seconds_since(t0));
        } while (seconds_since(start) < min_seconds || times.size() < 5);
        std::sort(times.begin(), times.end());
        const double median = times[times.size() / 2];
        const double gflops = 4.0 * kHeads * kHeadDim * n_pos / median / 1e9;
        std::printf("| attention | %s | %lld | %.1f | %.1f |\n", name.c_str(), static_cast<long long>(n_pos), median * 1e6, gflops);
        results.push_back({{"kernel", "attention_f16"}, {"order", name}, {"query_heads_per_call", per_call},
                           {"positions", n_pos}, {"heads", kHeads}, {"kv_heads", kKvHeads}, {"head_dim", kHeadDim},
                           {"reps", times.size()}, {"median_us", median * 1e6}, {"gflop_per_s", gflops}});
      }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = "bench-kernels.json";
  std::string types_arg = "F16,Q8_0,Q4_0,Q4_1,Q5_0,Q4_K,Q6_K";
  std::string tokens_arg = "1,512", threads_arg = "1,2", shapes_arg = "all";
  double min_seconds = 0.5;
  bool plain = false, ggml_order = false;
  std::string attention_arg;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--out") out_path = next();
    else if (a == "--types") types_arg = next();
    else if (a == "--tokens") tokens_arg = next();
    else if (a == "--threads") threads_arg = next();
    else if (a == "--shapes") shapes_arg = next();  // "all" or indices into the list, e.g. 0,3
    else if (a == "--min-seconds") min_seconds = std::stod(next());
    else if (a == "--plain") plain = true;
    else if (a == "--ggml-order") ggml_order = true;  // Q8_0 as a tied output matrix (see the top)
    else if (a == "--attention") attention_arg = next();  // cache lengths, e.g. 64,512 (see the top)
    else {
      std::printf("usage: bench_kernels [--out FILE] [--types F16,Q4_0,...] [--tokens 1,512]\n"
                  "                     [--threads 1,2] [--shapes all|0,1,2,3,4,5] [--min-seconds S]\n"
                  "                     [--plain | --ggml-order] [--attention 64,512]\n");
      return a == "--help" ? 0 : 2;
    }
  }
  const std::vector<Shape> all_shapes = {{2048, 2048, "attn q/o"}, {5632, 2048, "ffn gate/up"},
                                         {2048, 5632, "ffn down"}, {32000, 2048, "lm head"},
                                         // tied Q8_0 output matrices (token embeddings)
                                         {49152, 576, "SmolLM2 output"}, {128256, 2048, "Llama-3.2 output"}};
  std::vector<Shape> shapes;
  if (shapes_arg == "all") shapes.assign(all_shapes.begin(), all_shapes.begin() + 4);  // TinyLlama's
  else for (auto& s : split(shapes_arg)) shapes.push_back(all_shapes.at(std::stoi(s)));

  const KernelTable& k = active_kernels();
  nlohmann::json results = nlohmann::json::array();
  std::printf("kernels: %s, physical cores: %d\n\n", isa_name(k.isa), physical_core_count());
  if (!attention_arg.empty()) {
    bench_attention(k, split(attention_arg), min_seconds, results);
    nlohmann::json doc = {{"bench", "kernels-attention"}, {"isa", isa_name(k.isa)}, {"results", results}};
    std::ofstream(out_path) << doc.dump(1) << "\n";
    std::printf("\nwrote %s\n", out_path.c_str());
    return 0;
  }
  std::printf("| type | layout | rows x cols | tokens | threads | ms/call | weight GB/s | GFLOP/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const std::string& tname : split(types_arg)) {
    const GgmlType type = parse_type(tname);
    for (const Shape& s : shapes) {
      std::vector<uint8_t> base = make_matrix(type, s.rows, s.cols);
      const size_t bytes = base.size();
      // --ggml-order: Q8_0 as the loader lays a tied output matrix out for this table. Q4_1 is in
      // ggml's order wherever the table asks for it, as the loader lays every Q4_1 matrix.
      const bool q4_1_ggml = type == GgmlType::Q4_1 && k.interleave_q4_1_ggml_at_load;
      const bool ggml = !plain && ((ggml_order && type == GgmlType::Q8_0 && k.interleave_q8_0_ggml_at_load) || q4_1_ggml) &&
                        can_interleave(type, s.rows, s.cols);
      const bool as_output = ggml_order && type == GgmlType::Q8_0;  // ggml's order or the file's rows
      const bool interleaved = ggml || (!plain && !as_output && wants_interleaved(k, type, s.rows, s.cols));
      if (interleaved) {
        std::vector<uint8_t> relaid(bytes);
        interleave_rows(type, base.data(), type_row_bytes(type, s.cols), s.rows, s.cols, relaid.data());
        base = std::move(relaid);
      }
      const bool half = type == GgmlType::F16 || type == GgmlType::BF16;  // runs of four rows
      const char* layout = ggml ? "x16ggml" : interleaved ? (half ? "x4" : "x16") : "rows";
      // Copies so that the working set exceeds the last-level cache (32 MiB on this EPYC).
      const size_t copies = std::max<size_t>(1, (128u << 20) / bytes + 1);
      // In 2 MiB pages, as the loader's buffers are (model/weights.cpp; 4 KiB pages read slower).
      HugePageBuffer storage(bytes * copies);
      const std::span<uint8_t> all(storage.data(), bytes * copies);
      for (size_t c = 0; c < copies; ++c) std::memcpy(all.data() + c * bytes, base.data(), bytes);
      for (const std::string& tt : split(tokens_arg)) {
        const int64_t n_tok = std::stoll(tt);
        std::vector<float> x(n_tok * s.cols), y(n_tok * s.rows);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        std::mt19937 rng(2);
        for (auto& v : x) v = normal(rng);
        for (const std::string& th : split(threads_arg)) {
          ThreadPool pool(std::stoi(th));
          size_t copy = 0;
          auto run = [&] {
            WeightView w{type, all.data() + (copy++ % copies) * bytes, s.rows, s.cols, type_row_bytes(type, s.cols),
                         ggml ? WeightLayout::Interleaved16Ggml : interleaved ? WeightLayout::Interleaved16 : WeightLayout::Rows};
            matmul(k, w, x.data(), y.data(), n_tok, pool);
          };
          run();  // warm-up: page faults, thread start, scratch allocation
          std::vector<double> times;
          const auto start = std::chrono::steady_clock::now();
          do {
            const auto t0 = std::chrono::steady_clock::now();
            run();
            times.push_back(seconds_since(t0));
          } while (seconds_since(start) < min_seconds);
          std::sort(times.begin(), times.end());
          const double median = times[times.size() / 2];
          const double gbs = bytes / median / 1e9;
          const double gflops = 2.0 * s.rows * s.cols * n_tok / median / 1e9;
          std::printf("| %s | %s | %lldx%lld | %lld | %s | %.3f | %.1f | %.1f |\n", tname.c_str(), layout,
                      static_cast<long long>(s.rows), static_cast<long long>(s.cols),
                      static_cast<long long>(n_tok), th.c_str(), median * 1e3, gbs, gflops);
          std::fflush(stdout);
          results.push_back({{"type", tname}, {"layout", layout}, {"rows", s.rows}, {"cols", s.cols}, {"what", s.what},
                             {"n_tokens", n_tok}, {"threads", std::stoi(th)}, {"reps", times.size()},
                             {"median_ms", median * 1e3}, {"min_ms", times.front() * 1e3},
                             {"weight_bytes", bytes}, {"weight_gb_per_s", gbs}, {"gflop_per_s", gflops}});
        }
      }
    }
  }
  nlohmann::json doc = {{"bench", "kernels"}, {"isa", isa_name(k.isa)},
                        {"physical_cores", physical_core_count()}, {"results", results}};
  std::ofstream(out_path) << doc.dump(1) << "\n";
  std::printf("\nwrote %s\n", out_path.c_str());
  return 0;
}
