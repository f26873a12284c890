// The architecture description: everything that distinguishes Llama, GPT-NeoX and StableLM as
// data, so that one decoder implementation (model/decoder) serves all of them.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace billion {

class GgufFile;
class GgufWriter;

enum class NormKind { RMSNorm, LayerNorm };
enum class MlpKind { SwiGLU, GELU };  // SwiGLU: down(silu(gate(x)) * up(x)); GELU: down(gelu(up(x)))
// HalfSplit: dimension i pairs with i + n_rot/2 (Hugging Face rotate_half, GGUF NEOX rope).
// AdjacentPairs: dimension 2i pairs with 2i+1 (Meta reference; GGUF `llama` after the q/k permute).
enum class RopeStyle { HalfSplit, AdjacentPairs };

struct Llama3RopeScaling {
  double factor = 8;
  double low_freq_factor = 1;
  double high_freq_factor = 4;
  double original_max_position_embeddings = 8192;
};

struct ArchitectureSpec {
  std::string family;  // "llama", "gptneox", "stablelm" (HF model_type / GGUF general.architecture)
  int n_layers = 0;
  int hidden = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int intermediate = 0;
  int vocab_size = 0;
  int context_length = 0;
  NormKind norm = NormKind::RMSNorm;
  float norm_eps = 1e-5f;
  MlpKind mlp = MlpKind::SwiGLU;
  bool qkv_bias = false;       // biases on q/k/v (StableLM-2, GPT-NeoX)
  bool out_bias = false;       // bias on the attention output projection (GPT-NeoX)
  bool mlp_bias = false;       // biases on MLP projections (GPT-NeoX)
  bool qk_layernorm = false;   // per-head LayerNorm on q and k (some StableLM)
  bool parallel_residual = false;  // x + attn(ln1(x)) + mlp(ln2(x)) (GPT-NeoX)
  bool tied_embeddings = false;
  int rotary_dims = 0;         // rotated dimensions per head (head_dim × rotary fraction)
  double rope_theta = 10000;
  RopeStyle rope_style = RopeStyle::HalfSplit;
  std::optional<Llama3RopeScaling> llama3_scaling;

  // Total parameters of the description (embeddings counted once when tied).
  uint64_t parameter_count() const;
  // The rotary inverse frequencies per pair (n_rot/2 entries), llama3 scaling applied.
  std::vector<double> rope_inverse_frequencies() const;
  // Checks internal consistency (heads divide hidden, GQA ratio, rotary dims even...).
  void validate(const std::string& source) const;
};

// From a Hugging Face config.json (LlamaForCausalLM, GPTNeoXForCausalLM, StableLmForCausalLM).
ArchitectureSpec spec_from_hf_config(const nlohmann::json& config, const std::string& source);
// From GGUF metadata (general.architecture llama, gptneox, stablelm).
ArchitectureSpec spec_from_gguf(const GgufFile& gguf);
// The inverse: general.architecture and the [arch].* hyper-parameter keys llama.cpp reads.
void write_spec_to_gguf(const ArchitectureSpec& spec, GgufWriter& writer);

}  // namespace billion
