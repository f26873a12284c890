// The weights of one model, bound by name from a GGUF file or a safetensors checkpoint and
// shape-checked against the architecture description. Matrices keep their stored type
// (F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q5_x/Q4_K/Q5_K/Q6_K) unless `--quantize` asks for int8/int4,
// which re-encodes float matrices once at load; for the CPU kernels they are moved out of the
// file mapping into owned huge-page memory, re-laid where the kernels want Q4_0/Q8_0/Q4_K/Q6_K
// interleaved (see bind_gguf_weights below).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/huge_page_buffer.h"
#include "kernels/kernels.h"
#include "model/architecture.h"

namespace billion {

class GgufFile;
class SafetensorsCheckpoint;

// F32 dequantizes every matrix at load (a float reference for measuring quantization error).
enum class LoadQuantization { None, Int8, Int4, F32 };
// "int8" → Q8_0, "int4" → Q4_0 (docs/QUANTIZATION.md gives the error bounds).
LoadQuantization parse_load_quantization(const std::string& text);
GgmlType quantized_type(LoadQuantization q);

// An optional LoRA adapter on a Linear (src/train/lora.h attaches them): y += scale * B (A x).
struct LoraAdapter {
  std::vector<float> a;  // [rank, in]
  std::vector<float> b;  // [out, rank], in this Linear's row order
  int rank = 0;
  float scale = 0;
};

struct Linear {
  kernels::WeightView weight;  // [out, in]
  std::vector<float> bias;     // [out] or empty
  std::shared_ptr<const LoraAdapter> lora;  // null unless an adapter is attached
};

// Hugging Face GPT-NeoX fuses q, k, v per head ([n_heads, 3, head_dim] output rows); GGUF
// stores them as [all q; all k; all v]. Multiplying by the stored layout and scattering the
// output keeps the weights zero-copy.
enum class FusedQkvLayout { None, PerHead, Blocks };

struct LayerWeights {
  std::vector<float> attn_norm_w, attn_norm_b;  // [hidden]; _b empty for RMSNorm
  std::vector<float> ffn_norm_w, ffn_norm_b;    // empty when the MLP shares the attention norm
  FusedQkvLayout fused = FusedQkvLayout::None;
  Linear qkv;        // when fused
  Linear q, k, v;    // when not fused
  Linear o;
  std::vector<float> q_norm_w, k_norm_w;  // per-head LayerNorm weights [n_heads|n_kv, head_dim]
  Linear gate, up, down;                  // gate unused for the GELU MLP
};

struct ModelWeights {
  kernels::WeightView token_embedding;  // [vocab, hidden]
  std::vector<float> final_norm_w, final_norm_b;
  Linear output;  // [vocab, hidden]; the embedding itself when tied
  std::vector<LayerWeights> layers;
  std::vector<float> rope_freq_divisors;  // GGUF rope_freqs (Llama-3 scaling), else empty
  // Matrices copied, converted, re-quantized or re-laid at load, in huge-page memory.
  std::vector<std::unique_ptr<HugePageBuffer>> owned;
  uint64_t mapped_bytes = 0;  // weight bytes used in place from the file
  uint64_t owned_bytes = 0;
};

// interleave_for: when not null, the CPU kernels of that table will run the model, so (with
// copy_matrices) every matrix a matmul reads is moved out of the file mapping into owned
// huge-page memory (core/huge_page_buffer.h: decode streams it once per token), giving the
// file's pages of each back once copied: re-laid in the kernels' interleaved layout where the
// table wants it (kernels::wants_interleaved: Q4_0, Q8_0, Q4_K, Q6_K, and for AVX2 F16/BF16;
// a tied Q8_0 output in ggml's order), else copied as it is. A token embedding that is not also the output is only
// read a row at a time and stays in the file. Null (a GPU holds its own copy, or an A/B
// benchmark) leaves every matrix in the file's pages; copy_matrices false copies only what it
// re-lays or converts (A/B benchmarks: bench_peer --file-pages).
ModelWeights bind_gguf_weights(const GgufFile& gguf, const ArchitectureSpec& spec, LoadQuantization quantization,
                               const kernels::KernelTable* interleave_for = nullptr, bool copy_matrices = true);
ModelWeights bind_safetensors_weights(const SafetensorsCheckpoint& checkpoint, const ArchitectureSpec& spec,
                                      LoadQuantization quantization, const std::string& source,
                                      const kernels::KernelTable* interleave_for = nullptr, bool copy_matrices = true);

}  // namespace billion
