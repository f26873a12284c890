// What `billion info` reports about a model file or folder, gathered without loading weights:
// architecture, sizes, tensor dtypes, special tokens and whether a chat template is present.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/architecture.h"

namespace billion {

struct SpecialTokenInfo {
  std::string role;  // "bos", "eos", ...
  std::optional<int64_t> id;
  std::string text;
};

struct ModelInfo {
  std::string path;
  std::string format;  // "gguf" or "safetensors" (a folder)
  std::optional<uint32_t> gguf_version;
  std::optional<std::string> name;
  std::optional<ArchitectureSpec> spec;  // absent for vocabulary-only or unsupported files
  std::string architecture;              // as the file names it, supported or not
  std::optional<std::string> spec_error;  // why the spec could not be built
  uint64_t file_bytes = 0;
  uint64_t tensor_count = 0;
  uint64_t parameter_count = 0;  // from the tensors actually present
  std::map<std::string, uint64_t> dtype_counts;  // tensor dtype → number of tensors
  std::optional<std::string> tokenizer_model;    // GGUF tokenizer.ggml.model / HF tokenizer kind
  std::optional<std::string> tokenizer_pre;
  std::optional<uint64_t> tokenizer_vocab;
  std::vector<SpecialTokenInfo> special_tokens;
  bool has_chat_template = false;

  nlohmann::json to_json() const;
  std::string to_text() const;
};

ModelInfo inspect_model(const std::string& path);

}  // namespace billion
