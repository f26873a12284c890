#include "formats/hf_folder.h"

#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/utf8.h"

namespace billion {
namespace fs = std::filesystem;

nlohmann::json read_json_file(const std::string& path) {
  std::string text = read_text_file(path);
  if (!is_valid_utf8(text)) fail(path, "not valid UTF-8");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, "malformed JSON at byte {}: {}", e.byte, e.what());
  }
}

std::optional<std::string> special_token_text(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string()) return value["content"].get<std::string>();
  return std::nullopt;
}

namespace {

std::vector<int> int_or_list(const nlohmann::json& v, const std::string& path, const char* key) {
  std::vector<int> out;
  if (v.is_null()) return out;
  if (v.is_number_integer()) {
    out.push_back(v.get<int>());
  } else if (v.is_array()) {
    for (const auto& e : v) {
      if (!e.is_number_integer()) fail(path, "{} must be an integer or a list of integers", key);
      out.push_back(e.get<int>());
    }
  } else {
    fail(path, "{} must be an integer or a list of integers", key);
  }
  return out;
}

template <typename T>
std::optional<T> optional_value(const nlohmann::json& j, const char* key, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(path, "{} has the wrong type ({})", key, j[key].type_name());
  }
}

}  // namespace

GenerationConfig read_generation_config(const std::string& folder) {
  GenerationConfig g;
  std::string path = (fs::path(folder) / "generation_config.json").string();
  if (!fs::exists(path)) return g;
  auto j = read_json_file(path);
  if (!j.is_object()) fail(path, "not a JSON object");
  g.bos_token_id = optional_value<int>(j, "bos_token_id", path);
  if (j.contains("eos_token_id")) g.eos_token_ids = int_or_list(j["eos_token_id"], path, "eos_token_id");
  g.pad_token_id = optional_value<int>(j, "pad_token_id", path);
  g.do_sample = optional_value<bool>(j, "do_sample", path);
  g.temperature = optional_value<double>(j, "temperature", path);
  g.top_p = optional_value<double>(j, "top_p", path);
  g.top_k = optional_value<int>(j, "top_k", path);
  g.repetition_penalty = optional_value<double>(j, "repetition_penalty", path);
  g.max_new_tokens = optional_value<int>(j, "max_new_tokens", path);
  return g;
}

TokenizerConfig read_tokenizer_config(const std::string& folder) {
  TokenizerConfig t;
  std::string path = (fs::path(folder) / "tokenizer_config.json").string();
  if (fs::exists(path)) {
    auto j = read_json_file(path);
    if (!j.is_object()) fail(path, "not a JSON object");
    if (j.contains("chat_template")) {
      const auto& ct = j["chat_template"];
      if (ct.is_string()) {
        t.chat_template = ct.get<std::string>();
      } else if (ct.is_array()) {  // named templates: [{"name": "default", "template": "..."}]
        for (const auto& e : ct)
          if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
            t.chat_template = e["template"].get<std::string>();
      } else if (!ct.is_null()) {
        fail(path, "chat_template must be a string or a list of named templates");
      }
    }
    for (auto [key, field] : {std::pair{"bos_token", &t.bos_token}, {"eos_token", &t.eos_token},
                              {"unk_token", &t.unk_token}, {"pad_token", &t.pad_token}})
      if (j.contains(key)) *field = special_token_text(j[key]);
    t.add_bos_token = optional_value<bool>(j, "add_bos_token", path);
    t.add_eos_token = optional_value<bool>(j, "add_eos_token", path);
    t.legacy = optional_value<bool>(j, "legacy", path);
    t.tokenizer_class = j.value("tokenizer_class", "");
    if (j.contains("model_max_length") && j["model_max_length"].is_number_integer())
      t.model_max_length = j["model_max_length"].get<int64_t>();
  }
  // Newer repositories keep the template in its own file.
  std::string jinja = (fs::path(folder) / "chat_template.jinja").string();
  if (!t.chat_template && fs::exists(jinja)) t.chat_template = read_text_file(jinja);
  return t;
}

}  // namespace billion
