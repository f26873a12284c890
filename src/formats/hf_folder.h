// The small JSON files of a Hugging Face model folder besides the weights:
// generation_config.json (end-of-sequence ids, sampling defaults) and tokenizer_config.json
// (chat template, special tokens, add_bos). config.json is read by model/architecture.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace billion {

// Parses a JSON file; a missing file, bad UTF-8 or malformed JSON is an Error naming the file.
nlohmann::json read_json_file(const std::string& path);

struct GenerationConfig {
  std::optional<int> bos_token_id;
  std::vector<int> eos_token_ids;  // generation stops on any of these
  std::optional<int> pad_token_id;
  std::optional<bool> do_sample;
  std::optional<double> temperature, top_p, repetition_penalty;
  std::optional<int> top_k, max_new_tokens;
};

struct TokenizerConfig {
  std::optional<std::string> chat_template;
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token;
  std::optional<bool> add_bos_token, add_eos_token;
  std::optional<bool> legacy;
  std::string tokenizer_class;
  std::optional<int64_t> model_max_length;
};

// Absent files give empty configs; present but malformed ones are an Error.
GenerationConfig read_generation_config(const std::string& folder);
TokenizerConfig read_tokenizer_config(const std::string& folder);

// A special token entry may be a string or an AddedToken object {"content": ...}.
std::optional<std::string> special_token_text(const nlohmann::json& value);

}  // namespace billion
