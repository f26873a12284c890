// The one transformer decoder of billion-llm. Every supported family (Llama, GPT-NeoX, StableLM)
// runs through forward() below; what differs between them is data in ArchitectureSpec and
// ModelWeights. Kernels come from kernels/ and dispatch on each weight's type, so quantized and
// float models share this code too.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/architecture.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace billion {

// Which logits to compute: the output projection is the most expensive matmul of a small
// model, so prefill computes it only where the caller needs it.
enum class LogitsFor { Last, All, None };

class Decoder {
 public:
  Decoder(ArchitectureSpec spec, ModelWeights weights);

  const ArchitectureSpec& spec() const { return spec_; }
  const ModelWeights& weights() const { return weights_; }
  // For attaching LoRA adapters (train/lora.h); the matrices themselves stay read-only.
  ModelWeights& mutable_weights() { return weights_; }
  KVCache make_cache(int capacity, KVType type = KVType::F16) const;

  // Evaluates `tokens` at positions cache.size() ... cache.size() + n - 1, appends their keys and
  // values to the cache, and writes logits [n_out, vocab] to `logits` (n_out = 1 for Last, n for
  // All). Throws billion::Error if the tokens do not fit the cache or an id is out of range.
  void forward(std::span<const int32_t> tokens, KVCache& cache, std::vector<float>& logits, LogitsFor which, ThreadPool& pool);

  // Debug: after forward(), the hidden state after the final norm of the last token.
  const std::vector<float>& last_hidden() const { return last_hidden_; }

 private:
  void attention(int layer, int n, int start, KVCache& cache, ThreadPool& pool);
  void project(const Linear& l, const float* x, float* y, int n, ThreadPool& pool);

  ArchitectureSpec spec_;
  ModelWeights weights_;
  std::vector<float> inv_freq_;  // [rotary_dims/2], float32 as transformers computes it
  std::vector<float> last_hidden_;
  // Scratch, grown on demand: shapes in comments are [n tokens, width].
  std::vector<float> x_, h_, q_, k_, v_, qkv_, att_, o_, gate_, up_, mlp_out_;
};

}  // namespace billion
