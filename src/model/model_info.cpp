#include "model/model_info.h"

#include <fmt/format.h>

#include <filesystem>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/hf_folder.h"
#include "formats/safetensors.h"

namespace billion {
namespace fs = std::filesystem;
namespace {

ModelInfo inspect_gguf(const std::string& path) {
  GgufFile gguf(path);
  ModelInfo info;
  info.path = path;
  info.format = "gguf";
  info.gguf_version = gguf.version();
  info.file_bytes = gguf.file_size();
  info.tensor_count = gguf.tensors().size();
  info.name = gguf.string_or("general.name");
  info.architecture = gguf.string_or("general.architecture").value_or("(none)");
  for (const auto& t : gguf.tensors()) {
    info.dtype_counts[ggml_type_name(t.type)]++;
    info.parameter_count += t.n_elements;
  }
  try {
    info.spec = spec_from_gguf(gguf);
  } catch (const Error& e) {
    info.spec_error = e.what();
  }
  info.tokenizer_model = gguf.string_or("tokenizer.ggml.model");
  info.tokenizer_pre = gguf.string_or("tokenizer.ggml.pre");
  std::vector<std::string> tokens;
  if (gguf.find("tokenizer.ggml.tokens")) {
    tokens = gguf.get_string_array("tokenizer.ggml.tokens");
    info.tokenizer_vocab = tokens.size();
  }
  for (const char* role : {"bos", "eos", "eot", "unknown", "padding", "separator"}) {
    if (auto id = gguf.uint_or(fmt::format("tokenizer.ggml.{}_token_id", role))) {
      SpecialTokenInfo s{role, static_cast<int64_t>(*id), ""};
      if (*id < tokens.size()) s.text = tokens[*id];
      info.special_tokens.push_back(s);
    }
  }
  info.has_chat_template = gguf.find("tokenizer.chat_template") != nullptr;
  return info;
}

ModelInfo inspect_folder(const std::string& path) {
  ModelInfo info;
  info.path = path;
  info.format = "safetensors";
  std::string config_path = (fs::path(path) / "config.json").string();
  if (!fs::exists(config_path)) fail(path, "not a model folder: config.json is missing");
  auto config = read_json_file(config_path);
  if (!config.is_object()) fail(config_path, "not a JSON object");
  info.architecture = config.value("model_type", "(none)");
  if (config.contains("architectures") && config["architectures"].is_array() && !config["architectures"].empty() &&
      config["architectures"][0].is_string())
    info.name = config["architectures"][0].get<std::string>();
  try {
    info.spec = spec_from_hf_config(config, config_path);
  } catch (const Error& e) {
    info.spec_error = e.what();
  }
  bool has_weights = fs::exists(fs::path(path) / "model.safetensors") || fs::exists(fs::path(path) / "model.safetensors.index.json");
  if (has_weights) {
    SafetensorsCheckpoint checkpoint(path);
    info.file_bytes = checkpoint.total_bytes();
    for (const auto& [name, t] : checkpoint.tensors()) {
      info.dtype_counts[safetensors_dtype_name(t->dtype)]++;
      info.parameter_count += t->n_elements;
      info.tensor_count++;
    }
  }
  if (fs::exists(fs::path(path) / "tokenizer.json")) info.tokenizer_model = "tokenizer.json";
  else if (fs::exists(fs::path(path) / "tokenizer.model")) info.tokenizer_model = "tokenizer.model";
  else
    for (const auto& e : fs::directory_iterator(path))
      if (e.path().extension() == ".tiktoken") info.tokenizer_model = e.path().filename().string();
  auto tokenizer_config = read_tokenizer_config(path);
  auto generation = read_generation_config(path);
  info.has_chat_template = tokenizer_config.chat_template.has_value();
  auto id_of = [&](const char* key) -> std::optional<int64_t> {
    if (config.contains(key) && config[key].is_number_integer()) return config[key].get<int64_t>();
    return std::nullopt;
  };
  SpecialTokenInfo bos{"bos", generation.bos_token_id ? std::optional<int64_t>(*generation.bos_token_id) : id_of("bos_token_id"),
                       tokenizer_config.bos_token.value_or("")};
  if (bos.id || !bos.text.empty()) info.special_tokens.push_back(bos);
  std::vector<int> eos_ids = generation.eos_token_ids;
  if (eos_ids.empty() && config.contains("eos_token_id")) {
    const auto& e = config["eos_token_id"];
    if (e.is_number_integer()) eos_ids.push_back(e.get<int>());
    else if (e.is_array())
      for (const auto& x : e)
        if (x.is_number_integer()) eos_ids.push_back(x.get<int>());
  }
  // Generation may stop on several ids (Llama-3: 128001, 128008, 128009) while the tokenizer
  // names one eos text; without the vocabulary loaded they are listed separately.
  for (int id : eos_ids) info.special_tokens.push_back({"eos", id, ""});
  if (tokenizer_config.eos_token) info.special_tokens.push_back({"eos", std::nullopt, *tokenizer_config.eos_token});
  if (tokenizer_config.pad_token) info.special_tokens.push_back({"padding", id_of("pad_token_id"), *tokenizer_config.pad_token});
  if (tokenizer_config.unk_token) info.special_tokens.push_back({"unknown", std::nullopt, *tokenizer_config.unk_token});
  return info;
}

std::string human_bytes(uint64_t bytes) {
  if (bytes >= (uint64_t(1) << 30)) return fmt::format("{:.2f} GiB", bytes / double(uint64_t(1) << 30));
  if (bytes >= (uint64_t(1) << 20)) return fmt::format("{:.1f} MiB", bytes / double(1 << 20));
  return fmt::format("{} bytes", bytes);
}

}  // namespace

ModelInfo inspect_model(const std::string& path) {
  if (!fs::exists(path)) fail(path, "no such file or folder");
  if (fs::is_directory(path)) return inspect_folder(path);
  return inspect_gguf(path);
}

nlohmann::json ModelInfo::to_json() const {
  nlohmann::json j;
  j["path"] = path;
  j["format"] = format;
  if (gguf_version) j["gguf_version"] = *gguf_version;
  if (name) j["name"] = *name;
  j["architecture"] = architecture;
  j["file_bytes"] = file_bytes;
  j["tensor_count"] = tensor_count;
  j["parameter_count"] = parameter_count;
  j["tensor_dtypes"] = dtype_counts;
  if (spec) {
    const auto& s = *spec;
    j["layers"] = s.n_layers;
    j["hidden_size"] = s.hidden;
    j["attention_heads"] = s.n_heads;
    j["kv_heads"] = s.n_kv_heads;
    j["head_dim"] = s.head_dim;
    j["intermediate_size"] = s.intermediate;
    j["vocab_size"] = s.vocab_size;
    j["context_length"] = s.context_length;
    j["norm"] = s.norm == NormKind::RMSNorm ? "rmsnorm" : "layernorm";
    j["mlp"] = s.mlp == MlpKind::SwiGLU ? "swiglu" : "gelu";
    j["rotary_dims"] = s.rotary_dims;
    j["rope_theta"] = s.rope_theta;
    j["rope_scaling"] = s.llama3_scaling ? "llama3" : "none";
    j["parallel_residual"] = s.parallel_residual;
    j["tied_embeddings"] = s.tied_embeddings;
    j["qkv_bias"] = s.qkv_bias;
    if (parameter_count == 0) j["parameter_count_from_config"] = s.parameter_count();
  } else if (spec_error) {
    j["unsupported"] = *spec_error;
  }
  if (tokenizer_model) j["tokenizer"] = *tokenizer_model;
  if (tokenizer_pre) j["tokenizer_pre"] = *tokenizer_pre;
  if (tokenizer_vocab) j["tokenizer_vocab"] = *tokenizer_vocab;
  j["special_tokens"] = nlohmann::json::array();
  for (const auto& s : special_tokens) {
    nlohmann::json t{{"role", s.role}, {"text", s.text}};
    if (s.id) t["id"] = *s.id;
    j["special_tokens"].push_back(t);
  }
  j["chat_template"] = has_chat_template;
  return j;
}

std::string ModelInfo::to_text() const {
  std::string out;
  auto line = [&](const std::string& key, const std::string& value) { out += fmt::format("{:<18} {}\n", key + ":", value); };
  line("path", path);
  line("format", format + (gguf_version ? fmt::format(" v{}", *gguf_version) : ""));
  if (name) line("name", *name);
  line("architecture", architecture);
  if (spec) {
    const auto& s = *spec;
    line("layers", std::to_string(s.n_layers));
    line("hidden size", std::to_string(s.hidden));
    line("attention heads", fmt::format("{} ({} key/value, head dim {})", s.n_heads, s.n_kv_heads, s.head_dim));
    line("feed-forward", fmt::format("{} ({})", s.intermediate, s.mlp == MlpKind::SwiGLU ? "SwiGLU" : "GELU"));
    line("normalisation", fmt::format("{} (eps {})", s.norm == NormKind::RMSNorm ? "RMSNorm" : "LayerNorm", s.norm_eps));
    line("rotary", fmt::format("{} of {} dims, theta {}{}", s.rotary_dims, s.head_dim, s.rope_theta, s.llama3_scaling ? ", llama3 scaling" : ""));
    line("context length", std::to_string(s.context_length));
    line("vocabulary", std::to_string(s.vocab_size));
    line("embeddings", s.tied_embeddings ? "tied" : "untied");
    if (s.parallel_residual) line("residual", "parallel");
  } else if (spec_error) {
    line("engine support", "no: " + *spec_error);
  }
  uint64_t params = parameter_count ? parameter_count : (spec ? spec->parameter_count() : 0);
  line("parameters", params ? fmt::format("{:.1f} M{}", params / 1e6, parameter_count ? "" : " (from config; no weights here)") : "unknown");
  line("file size", file_bytes ? human_bytes(file_bytes) : "no weights");
  std::string dtypes;
  for (const auto& [dtype, count] : dtype_counts) dtypes += fmt::format("{}{} x{}", dtypes.empty() ? "" : ", ", dtype, count);
  line("tensors", fmt::format("{}{}", tensor_count, dtypes.empty() ? "" : " (" + dtypes + ")"));
  if (tokenizer_model) line("tokenizer", *tokenizer_model + (tokenizer_pre ? " / pre " + *tokenizer_pre : "") + (tokenizer_vocab ? fmt::format(", {} tokens", *tokenizer_vocab) : ""));
  for (const auto& s : special_tokens)
    line("special " + s.role, fmt::format("{}{}", s.id ? std::to_string(*s.id) + " " : "", s.text.empty() ? "" : "\"" + s.text + "\""));
  line("chat template", has_chat_template ? "yes" : "no");
  return out;
}

}  // namespace billion
