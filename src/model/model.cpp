#include "model/model.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"

namespace billion {
namespace fs = std::filesystem;

Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& options) {
  std::unique_ptr<Model> m(new Model());
  const kernels::KernelTable* interleave = options.interleave_weights ? &kernels::active_kernels() : nullptr;
  m->path_ = path;
  if (!fs::exists(path)) fail(path, "no such file or folder");
  if (fs::is_directory(path)) {
    m->format_ = "safetensors";
    auto config_path = (fs::path(path) / "config.json").string();
    if (!fs::exists(config_path)) fail(path, "not a model folder: config.json is missing");
    auto spec = spec_from_hf_config(read_json_file(config_path), config_path);
    m->checkpoint_ = std::make_unique<SafetensorsCheckpoint>(path);
    m->file_bytes_ = m->checkpoint_->total_bytes();
    auto weights = bind_safetensors_weights(*m->checkpoint_, spec, options.quantization, path, interleave, options.copy_weights);
    m->decoder_ = std::make_unique<Decoder>(std::move(spec), std::move(weights));
    m->tokenizer_ = load_tokenizer_from_folder(path);
    m->generation_config_ = read_generation_config(path);
    m->chat_template_ = read_tokenizer_config(path).chat_template;
    for (int id : m->generation_config_.eos_token_ids) m->stop_ids_.push_back(id);
    if (m->stop_ids_.empty()) {
      auto config = read_json_file(config_path);
      if (config.contains("eos_token_id") && config["eos_token_id"].is_number_integer()) m->stop_ids_.push_back(config["eos_token_id"].get<int>());
    }
  } else {
    m->format_ = "gguf";
    m->gguf_ = std::make_unique<GgufFile>(path);
    m->file_bytes_ = m->gguf_->file_size();
    auto spec = spec_from_gguf(*m->gguf_);
    auto weights = bind_gguf_weights(*m->gguf_, spec, options.quantization, interleave, options.copy_weights);
    m->decoder_ = std::make_unique<Decoder>(std::move(spec), std::move(weights));
    m->tokenizer_ = load_tokenizer_from_gguf(*m->gguf_);
    m->chat_template_ = m->gguf_->string_or("tokenizer.chat_template");
  }
  const auto& special = m->tokenizer_->special_tokens();
  for (auto id : {special.eos, special.eot})
    if (id) m->stop_ids_.push_back(*id);
  for (auto id : special.extra_eos) m->stop_ids_.push_back(id);
  std::sort(m->stop_ids_.begin(), m->stop_ids_.end());
  m->stop_ids_.erase(std::unique(m->stop_ids_.begin(), m->stop_ids_.end()), m->stop_ids_.end());
  if (m->tokenizer_->vocab_size() > static_cast<size_t>(m->spec().vocab_size))
    fail(path, "the tokenizer has {} tokens but the model's vocabulary is {}", m->tokenizer_->vocab_size(), m->spec().vocab_size);
  return m;
}

std::string Model::bos_text() const {
  const auto& s = tokenizer_->special_tokens();
  return s.bos ? tokenizer_->token_text(*s.bos) : "";
}

std::string Model::eos_text() const {
  const auto& s = tokenizer_->special_tokens();
  return s.eos ? tokenizer_->token_text(*s.eos) : "";
}

}  // namespace billion
