// The one transformer decoder of billion-llm. Every supported family (Llama, GPT-NeoX, StableLM)
// runs through forward() below; what differs between them is data in ArchitectureSpec and
// ModelWeights. Kernels come from kernels/ and dispatch on each weight's type, so quantized and
// float models share this code too.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "model/architecture.h"
#include "model/device_backend.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace billion {

class Decoder {
 public:
  Decoder(ArchitectureSpec spec, ModelWeights weights);

  const ArchitectureSpec& spec() const { return spec_; }
  const ModelWeights& weights() const { return weights_; }
  // For attaching LoRA adapters (train/lora.h); the matrices themselves stay read-only.
  ModelWeights& mutable_weights() { return weights_; }
  // With a device backend attached, the cache's positions live on the device.
  KVCache make_cache(int capacity, KVType type = KVType::F16) const;

  // Runs every later forward() on an accelerator (src/gpu attaches one); null returns to the
  // CPU. Caches made before the switch cannot be used after it, and the other way round.
  void set_device(std::shared_ptr<DeviceBackend> device) { device_ = std::move(device); }
  DeviceBackend* device() const { return device_.get(); }
  // The rotary inverse frequencies in float32 as transformers computes them (llama3 scaling or
  // GGUF rope_freqs applied): [rotary_dims/2]. For backends that rotate as the F32 path does.
  const std::vector<float>& rope_inverse_frequencies() const { return inv_freq_; }

  // Evaluates `tokens` at positions cache.size() ... cache.size() + n - 1, appends their keys and
  // values to the cache, and writes logits [n_out, vocab] to `logits` (n_out = 1 for Last, n for
  // All). Throws billion::Error if the tokens do not fit the cache or an id is out of range.
  // Long inputs run in micro-batches of at most max_micro_batch() tokens, so scratch memory does
  // not grow with the prompt; the logits are the same bits as one pass would give (every
  // position's arithmetic is independent of the batch it is in, once the batch has two or more
  // tokens).
  void forward(std::span<const int32_t> tokens, KVCache& cache, std::vector<float>& logits, LogitsFor which, ThreadPool& pool);
  int max_micro_batch() const { return max_micro_batch_; }
  void set_max_micro_batch(int n) { max_micro_batch_ = std::max(n, 2); }

  // Debug: after forward() on the CPU, the hidden state after the final norm of the last token.
  const std::vector<float>& last_hidden() const { return last_hidden_; }

  // Debug: called during forward() with each named intermediate tensor (llama.cpp's names:
  // "attn_norm", "Qcur", "Kcur", "Vcur", "kqv_out", "attn_out", "ffn_inp", "ffn_norm", "ffn_gate",
  // "ffn_up", "ffn_swiglu", "ffn_out", "l_out"; layer -1 for "result_norm" and "result_output"),
  // data [n tokens, width]. For diffing a layer against another engine (bench/bench_parity).
  // CPU only: a device backend does not report intermediates.
  using TraceFn = std::function<void(const char* name, int layer, const float* data, int64_t n_tokens, int64_t width)>;
  void set_trace(TraceFn fn) { trace_ = std::move(fn); }

 private:
  // One micro-batch; `order` is decided by forward() for the whole input.
  void forward_batch(std::span<const int32_t> tokens, KVCache& cache, float* logits, LogitsFor which,
                     kernels::AttentionOrder order, ThreadPool& pool);
  void attention(int layer, int n, int start, KVCache& cache, kernels::AttentionOrder order, ThreadPool& pool);
  void project(const Linear& l, const float* x, float* y, int n, ThreadPool& pool);
  // Several projections of the same input x [n, in] (q/k/v, up/gate): one kernels::matmul_many
  // (activations quantized once, one parallel region), then each output gets its bias and LoRA
  // term as project() adds them; ys[i] [n, ls[i]->weight.rows]. Same bits as project() each.
  void project_many(std::span<const Linear* const> ls, std::span<float* const> ys, const float* x, int n, ThreadPool& pool);
  // The bias and LoRA term of l added to y = x·Wᵀ [n, out] (x [n, in]).
  void add_bias_and_lora(const Linear& l, const float* x, float* y, int n, ThreadPool& pool);

  ArchitectureSpec spec_;
  ModelWeights weights_;
  std::vector<float> inv_freq_;  // [rotary_dims/2], float32 as transformers computes it
  float rope_theta_scale_ = 1;   // ggml's per-pair angle ratio, base^(-2/rotary_dims) in float
  std::vector<float> rope_factors_;  // [rotary_dims/2] ggml frequency divisors (rope scaling), or empty
  std::vector<float> last_hidden_;
  TraceFn trace_;
  std::shared_ptr<DeviceBackend> device_;
  int max_micro_batch_ = 256;  // 512 tokens would be ~15 MB of scratch for SmolLM2, ~50 MB for TinyLlama
  // Scratch, grown on demand: shapes in comments are [n tokens, width].
  std::vector<float> x_, h_, q_, k_, v_, qkv_, att_, o_, gate_, up_, mlp_out_;
};

}  // namespace billion
