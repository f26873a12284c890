// LoRA adapters: which projections get one (PEFT's target_modules), their initialisation, and
// the PEFT file format (adapter_config.json + adapter_model.safetensors, CONVENTIONS.md §4).
//
// Row order: adapters are held in the *engine's* row order of the base weight they attach to.
// For an HF folder that is Hugging Face's order. For a GGUF llama base, the converter permuted the
// q/k rows (adjacent-pair rope) and GGUF GPT-NeoX stores fused qkv as [all q; all k; all v], so
// B's rows are permuted on save and load; A (indexed by input features) never moves.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/architecture.h"
#include "model/weights.h"

namespace billion {
class Model;
}

namespace billion::train {

// The projections a LoRA can attach to; names are the HF leaf module names per family.
enum class Proj { Q, K, V, QKV, O, Gate, Up, Down };
constexpr int kProjCount = 8;

struct LoraConfig {
  int rank = 8;
  float alpha = 16;
  float dropout = 0;
  bool rslora = false;                 // scaling alpha/sqrt(r) instead of alpha/r
  std::vector<std::string> targets;    // HF leaf names; empty = PEFT's default for the family
};

struct LoraModule {
  int layer = 0;
  Proj proj = Proj::Q;
  int64_t in = 0, out = 0;
  std::vector<float> a;  // [r, in]
  std::vector<float> b;  // [out, r], engine row order
};

struct LoraAdapterSet {
  int rank = 8;
  float alpha = 16;
  float dropout = 0;
  bool rslora = false;
  std::vector<std::string> targets;  // resolved HF leaf names
  std::vector<LoraModule> modules;   // ordered by (layer, proj)
  float scale() const;
};

// How the loaded base lays out its weights (decides the row permutations above).
struct BaseLayout {
  bool gguf = false;
  FusedQkvLayout fused = FusedQkvLayout::None;
};
BaseLayout base_layout_of(const ModelWeights& weights, const std::string& format);

// HF leaf name of a projection for a family ("q_proj", "query_key_value", ...); empty if the
// family has no such projection.
std::string proj_hf_name(const std::string& family, Proj p);
// "model.layers.3.self_attn.q_proj" / "gpt_neox.layers.3.attention.query_key_value".
std::string module_path(const std::string& family, int layer, Proj p);
// PEFT's default targets (q_proj,v_proj; query_key_value for gpt_neox) and `all-linear`.
std::vector<std::string> default_targets(const std::string& family);
std::vector<std::string> all_linear_targets(const std::string& family);

// The base Linear a projection names in the bound weights (null when the family lacks it).
const Linear* base_linear(const ModelWeights& w, int layer, Proj p);

// New adapters for every targeted projection: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's
// kaiming_uniform(a=sqrt(5))), B = 0, from a fixed seed. Unknown target names are an error.
LoraAdapterSet create_lora(const ArchitectureSpec& spec, const ModelWeights& weights, const LoraConfig& config, uint64_t seed);

// PEFT folder I/O. save writes B rows in Hugging Face order; load checks every tensor against
// the base (a wrong module name, family or shape is an error naming the adapter and the base).
void save_peft(const LoraAdapterSet& set, const ArchitectureSpec& spec, const BaseLayout& layout, const std::string& dir,
               const std::string& base_model_name);
LoraAdapterSet load_peft(const std::string& dir, const ArchitectureSpec& spec, const BaseLayout& layout);

// Attaches the adapters to the model's decoder (Linear::lora), so generate/chat use them.
void attach_lora(Model& model, const LoraAdapterSet& set);
// The same on bound weights (tests, or a Decoder built by hand); `where` names the model in errors.
void attach_lora(ModelWeights& weights, const LoraAdapterSet& set, const std::string& where);
// Loads a PEFT folder and attaches it.
void attach_peft_adapter(Model& model, const std::string& dir);

// Minimal safetensors writer: F32 tensors [shape] in the given order plus string metadata.
struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
};
void write_safetensors_f32(const std::string& path, const std::vector<NamedTensor>& tensors,
                           const std::vector<std::pair<std::string, std::string>>& metadata);

// Row permutation of a projection's output rows: hf_row[engine_row]; empty when identity.
std::vector<int64_t> hf_rows_of_engine_rows(const ArchitectureSpec& spec, const BaseLayout& layout, Proj p);

}  // namespace billion::train
