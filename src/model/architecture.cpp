// Reading the architecture description from HF config.json (old keys and transformers 5's
// `rope_parameters`) and from GGUF metadata, with the defaults each HF config class applies.
#include "model/architecture.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"

namespace billion {
namespace {

using json = nlohmann::json;

template <typename T>
T get_or(const json& j, const char* key, T fallback, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const json::exception&) {
    fail(source, "config key {} has the wrong type ({})", key, j[key].type_name());
  }
}

int get_required_int(const json& j, const char* key, const std::string& source) {
  if (!j.contains(key) || !j[key].is_number_integer()) fail(source, "config key {} is missing or not an integer", key);
  int64_t v = j[key].get<int64_t>();
  if (v <= 0 || v > (int64_t(1) << 30)) fail(source, "config key {} has an implausible value {}", key, v);
  return static_cast<int>(v);
}

// rope_scaling (transformers 4) or rope_parameters (transformers 5) → the llama3 scaling, if any.
std::optional<Llama3RopeScaling> read_llama3_scaling(const json& config, const std::string& source) {
  const json* block = nullptr;
  if (config.contains("rope_parameters") && config["rope_parameters"].is_object()) block = &config["rope_parameters"];
  else if (config.contains("rope_scaling") && config["rope_scaling"].is_object()) block = &config["rope_scaling"];
  if (!block) return std::nullopt;
  std::string type = get_or<std::string>(*block, "rope_type", get_or<std::string>(*block, "type", "default", source), source);
  if (type == "default") return std::nullopt;
  if (type != "llama3") fail(source, "rope scaling type {} is not supported (only llama3)", type);
  Llama3RopeScaling s;
  s.factor = get_or<double>(*block, "factor", 8.0, source);
  s.low_freq_factor = get_or<double>(*block, "low_freq_factor", 1.0, source);
  s.high_freq_factor = get_or<double>(*block, "high_freq_factor", 4.0, source);
  s.original_max_position_embeddings = get_or<double>(*block, "original_max_position_embeddings", 8192.0, source);
  return s;
}

double read_rope_theta(const json& config, const char* legacy_key, double fallback, const std::string& source) {
  if (config.contains("rope_parameters") && config["rope_parameters"].is_object() && config["rope_parameters"].contains("rope_theta"))
    return get_or<double>(config["rope_parameters"], "rope_theta", fallback, source);
  return get_or<double>(config, legacy_key, fallback, source);
}

double read_partial_rotary(const json& config, const char* legacy_key, double fallback, const std::string& source) {
  if (config.contains("rope_parameters") && config["rope_parameters"].is_object() &&
      config["rope_parameters"].contains("partial_rotary_factor"))
    return get_or<double>(config["rope_parameters"], "partial_rotary_factor", fallback, source);
  return get_or<double>(config, legacy_key, fallback, source);
}

}  // namespace

uint64_t ArchitectureSpec::parameter_count() const {
  uint64_t h = hidden, q = uint64_t(n_heads) * head_dim, kv = uint64_t(n_kv_heads) * head_dim;
  uint64_t attn = h * q + 2 * h * kv + q * h;
  if (qkv_bias) attn += q + 2 * kv;
  if (out_bias) attn += h;
  if (qk_layernorm) attn += 2 * uint64_t(head_dim) * (n_heads + n_kv_heads);
  uint64_t mlp = (this->mlp == MlpKind::SwiGLU ? 3 : 2) * h * intermediate;
  if (mlp_bias) mlp += intermediate + h;
  uint64_t norm_params = norm == NormKind::LayerNorm ? 2 * h : h;
  uint64_t norms_per_layer = 2;  // StableLM with parallel residual has one; close enough for a count
  uint64_t per_layer = attn + mlp + norms_per_layer * norm_params;
  uint64_t embeddings = uint64_t(vocab_size) * h * (tied_embeddings ? 1 : 2);
  return uint64_t(n_layers) * per_layer + embeddings + norm_params;
}

std::vector<double> ArchitectureSpec::rope_inverse_frequencies() const {
  std::vector<double> inv(rotary_dims / 2);
  for (int i = 0; i < rotary_dims / 2; ++i) inv[i] = 1.0 / std::pow(rope_theta, 2.0 * i / rotary_dims);
  if (llama3_scaling) {
    // Llama 3.x: long wavelengths are slowed by `factor`, short ones kept, the band between
    // interpolated smoothly (HF _compute_llama3_parameters; Meta apply_scaling).
    const auto& s = *llama3_scaling;
    double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
    double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
    for (auto& f : inv) {
      double wavelen = 2 * M_PI / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f /= s.factor;
      } else {
        double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
  }
  return inv;
}

void ArchitectureSpec::validate(const std::string& source) const {
  if (n_layers <= 0 || hidden <= 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || intermediate <= 0 || vocab_size <= 0)
    fail(source, "architecture has a non-positive size (layers {}, hidden {}, heads {}, kv heads {}, head dim {}, ffn {}, vocab {})",
         n_layers, hidden, n_heads, n_kv_heads, head_dim, intermediate, vocab_size);
  if (n_heads % n_kv_heads != 0) fail(source, "{} attention heads are not a multiple of {} key/value heads", n_heads, n_kv_heads);
  if (rotary_dims <= 0 || rotary_dims > head_dim || rotary_dims % 2 != 0)
    fail(source, "rotary dimension {} must be even and within the head dimension {}", rotary_dims, head_dim);
  if (!(norm_eps > 0)) fail(source, "normalisation epsilon must be positive");
  if (context_length <= 0) fail(source, "context length must be positive");
}

ArchitectureSpec spec_from_hf_config(const json& config, const std::string& source) {
  if (!config.is_object()) fail(source, "config is not a JSON object");
  std::string model_type = get_or<std::string>(config, "model_type", "", source);
  if (model_type != "llama" && model_type != "gpt_neox" && model_type != "stablelm")
    fail(source, "model_type {} is not supported (llama, gpt_neox and stablelm are)", model_type.empty() ? "(missing)" : model_type);
  ArchitectureSpec s;
  s.hidden = get_required_int(config, "hidden_size", source);
  s.n_layers = get_required_int(config, "num_hidden_layers", source);
  s.n_heads = get_required_int(config, "num_attention_heads", source);
  s.intermediate = get_required_int(config, "intermediate_size", source);
  s.vocab_size = get_required_int(config, "vocab_size", source);
  s.context_length = get_or<int>(config, "max_position_embeddings", 2048, source);
  s.n_kv_heads = get_or<int>(config, "num_key_value_heads", s.n_heads, source);
  s.head_dim = get_or<int>(config, "head_dim", s.hidden / s.n_heads, source);
  std::string act = get_or<std::string>(config, "hidden_act", "silu", source);
  if (model_type == "llama") {
    s.family = "llama";
    s.norm = NormKind::RMSNorm;
    s.norm_eps = get_or<float>(config, "rms_norm_eps", 1e-6f, source);
    s.mlp = MlpKind::SwiGLU;
    s.qkv_bias = s.out_bias = get_or<bool>(config, "attention_bias", false, source);
    s.mlp_bias = get_or<bool>(config, "mlp_bias", false, source);
    s.tied_embeddings = get_or<bool>(config, "tie_word_embeddings", false, source);
    s.rope_theta = read_rope_theta(config, "rope_theta", 10000.0, source);
    s.rotary_dims = s.head_dim;
    s.llama3_scaling = read_llama3_scaling(config, source);
    if (act != "silu") fail(source, "llama hidden_act {} is not supported (silu expected)", act);
  } else if (model_type == "gpt_neox") {
    s.family = "gptneox";
    s.norm = NormKind::LayerNorm;
    s.norm_eps = get_or<float>(config, "layer_norm_eps", 1e-5f, source);
    s.mlp = MlpKind::GELU;
    s.qkv_bias = s.out_bias = get_or<bool>(config, "attention_bias", true, source);
    s.mlp_bias = true;
    s.parallel_residual = get_or<bool>(config, "use_parallel_residual", true, source);
    s.tied_embeddings = get_or<bool>(config, "tie_word_embeddings", false, source);
    s.rope_theta = read_rope_theta(config, "rotary_emb_base", 10000.0, source);
    s.rotary_dims = static_cast<int>(s.head_dim * read_partial_rotary(config, "rotary_pct", 0.25, source));
    if (act != "gelu") fail(source, "gpt_neox hidden_act {} is not supported (exact gelu expected)", act);
  } else if (model_type == "stablelm") {
    s.family = "stablelm";
    s.norm = NormKind::LayerNorm;
    s.norm_eps = get_or<float>(config, "layer_norm_eps", 1e-5f, source);
    s.mlp = MlpKind::SwiGLU;
    s.qkv_bias = get_or<bool>(config, "use_qkv_bias", false, source);
    s.qk_layernorm = get_or<bool>(config, "qk_layernorm", false, source);
    s.parallel_residual = get_or<bool>(config, "use_parallel_residual", false, source);
    s.tied_embeddings = get_or<bool>(config, "tie_word_embeddings", false, source);
    s.rope_theta = read_rope_theta(config, "rope_theta", 10000.0, source);
    s.rotary_dims = static_cast<int>(s.head_dim * read_partial_rotary(config, "partial_rotary_factor", 0.25, source));
    if (act != "silu") fail(source, "stablelm hidden_act {} is not supported (silu expected)", act);
  } else {
    fail(source, "model_type {} is not supported (llama, gpt_neox and stablelm are)", model_type.empty() ? "(missing)" : model_type);
  }
  s.rope_style = RopeStyle::HalfSplit;  // HF checkpoints use rotate_half
  s.validate(source);
  return s;
}

ArchitectureSpec spec_from_gguf(const GgufFile& gguf) {
  const std::string& source = gguf.path();
  ArchitectureSpec s;
  std::string arch = gguf.get_string("general.architecture");
  auto key = [&](const std::string& k) { return arch + "." + k; };
  auto get_int = [&](const std::string& k) {
    uint64_t v = gguf.get_uint(key(k));
    if (v == 0 || v > (uint64_t(1) << 30)) fail(source, "metadata {} has an implausible value {}", key(k), v);
    return static_cast<int>(v);
  };
  s.family = arch;
  s.n_layers = get_int("block_count");
  s.hidden = get_int("embedding_length");
  s.n_heads = get_int("attention.head_count");
  s.n_kv_heads = gguf.uint_or(key("attention.head_count_kv")) ? get_int("attention.head_count_kv") : s.n_heads;
  s.intermediate = get_int("feed_forward_length");
  s.context_length = get_int("context_length");
  s.head_dim = gguf.uint_or(key("attention.key_length")) ? get_int("attention.key_length") : s.hidden / s.n_heads;
  s.rotary_dims = gguf.uint_or(key("rope.dimension_count")) ? get_int("rope.dimension_count") : s.head_dim;
  s.rope_theta = gguf.float_or(key("rope.freq_base")).value_or(10000.0);
  if (auto v = gguf.uint_or(key("vocab_size"))) s.vocab_size = static_cast<int>(*v);
  else if (const auto* t = gguf.find_tensor("token_embd.weight"); t && t->dims.size() == 2) s.vocab_size = static_cast<int>(t->dims[1]);
  else if (const auto* tokens = gguf.find("tokenizer.ggml.tokens")) s.vocab_size = static_cast<int>(tokens->array.size());
  if (arch == "llama") {
    s.norm = NormKind::RMSNorm;
    s.norm_eps = static_cast<float>(gguf.get_float(key("attention.layer_norm_rms_epsilon")));
    s.mlp = MlpKind::SwiGLU;
    s.rope_style = RopeStyle::AdjacentPairs;  // the converter permuted q/k rows for it
    s.tied_embeddings = gguf.find_tensor("output.weight") == nullptr;
    s.qkv_bias = gguf.find_tensor("blk.0.attn_q.bias") != nullptr;
    s.out_bias = gguf.find_tensor("blk.0.attn_output.bias") != nullptr;
    // Llama-3 scaling travels as the rope_freqs tensor of divisors; the decoder reads it.
  } else if (arch == "gptneox") {
    s.norm = NormKind::LayerNorm;
    s.norm_eps = static_cast<float>(gguf.get_float(key("attention.layer_norm_epsilon")));
    s.mlp = MlpKind::GELU;
    s.rope_style = RopeStyle::HalfSplit;
    s.qkv_bias = s.out_bias = s.mlp_bias = true;
    s.parallel_residual = gguf.bool_or(key("use_parallel_residual")).value_or(true);
    s.tied_embeddings = gguf.find_tensor("output.weight") == nullptr;
  } else if (arch == "stablelm") {
    s.norm = NormKind::LayerNorm;
    s.norm_eps = static_cast<float>(gguf.get_float(key("attention.layer_norm_epsilon")));
    s.mlp = MlpKind::SwiGLU;
    s.rope_style = RopeStyle::HalfSplit;
    s.qkv_bias = gguf.find_tensor("blk.0.attn_q.bias") != nullptr;
    s.qk_layernorm = gguf.find_tensor("blk.0.attn_q_norm.weight") != nullptr;
    s.parallel_residual = gguf.find_tensor("blk.0.ffn_norm.weight") == nullptr;
    s.tied_embeddings = gguf.find_tensor("output.weight") == nullptr;
  } else {
    fail(source, "general.architecture {} is not supported by the engine (llama, gptneox, stablelm are)", arch);
  }
  s.validate(source);
  return s;
}

void write_spec_to_gguf(const ArchitectureSpec& spec, GgufWriter& w) {
  const std::string& arch = spec.family;
  auto key = [&](const char* k) { return arch + "." + k; };
  w.set_string("general.architecture", arch);
  w.set_u32(key("context_length"), spec.context_length);
  w.set_u32(key("embedding_length"), spec.hidden);
  w.set_u32(key("block_count"), spec.n_layers);
  w.set_u32(key("feed_forward_length"), spec.intermediate);
  w.set_u32(key("attention.head_count"), spec.n_heads);
  w.set_u32(key("attention.head_count_kv"), spec.n_kv_heads);
  w.set_u32(key("rope.dimension_count"), spec.rotary_dims);
  w.set_f32(key("rope.freq_base"), static_cast<float>(spec.rope_theta));
  w.set_u32(key("vocab_size"), spec.vocab_size);
  if (spec.norm == NormKind::RMSNorm) {
    w.set_f32(key("attention.layer_norm_rms_epsilon"), spec.norm_eps);
  } else {
    w.set_f32(key("attention.layer_norm_epsilon"), spec.norm_eps);
    w.set_bool(key("use_parallel_residual"), spec.parallel_residual);
  }
  if (arch == "llama") {
    w.set_u32(key("attention.key_length"), spec.head_dim);
    w.set_u32(key("attention.value_length"), spec.head_dim);
  }
}

}  // namespace billion
