// Model aliases and cache look-up for every subcommand (see model_alias.h).
#include "hub/model_alias.h"

#include <filesystem>

#include "core/error.h"
#include "hub/exit_codes.h"
#include "hub/hub_cache.h"

namespace billion::hub {

const std::vector<ModelAlias>& model_aliases() {
  static const std::vector<ModelAlias> aliases = {
      {"tinyllama", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"},
      {"llama3.2-1b", "meta-llama/Llama-3.2-1B-Instruct"},
      {"stablelm", "stabilityai/stablelm-2-1_6b-chat"},
      {"pythia-1b", "EleutherAI/pythia-1b"},
      {"llama2-7b-chat", "meta-llama/Llama-2-7b-chat-hf"},  // speculative-decoding target
      {"smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct"},
  };
  return aliases;
}

std::vector<std::string> default_download_models() { return {"tinyllama", "llama3.2-1b", "stablelm", "pythia-1b"}; }

bool is_repo_id(const std::string& text) {
  auto slash = text.find('/');
  if (slash == std::string::npos || text.find('/', slash + 1) != std::string::npos) return false;
  for (const std::string& part : {text.substr(0, slash), text.substr(slash + 1)}) {
    if (part.empty() || part.size() > 96) return false;
    if (part.find("..") != std::string::npos || part.find("--") != std::string::npos) return false;
    if (part.front() == '-' || part.front() == '.' || part.back() == '-' || part.back() == '.') return false;
    for (unsigned char c : part) {
      if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.')) return false;
    }
  }
  return true;
}

std::string alias_list() {
  std::string out;
  for (const auto& a : model_aliases()) out += (out.empty() ? "" : ", ") + a.name;
  return out;
}

std::string to_repo_id(const std::string& name) {
  for (const auto& a : model_aliases()) {
    if (a.name == name) return a.repo_id;
  }
  if (is_repo_id(name)) return name;
  throw Error("'" + name + "' is not a model name: use an alias (" + alias_list() + ") or a Hub repo id like org/name");
}

std::string resolve_model_path(const std::string& model_name_or_path) {
  std::error_code ec;
  if (!model_name_or_path.empty() && std::filesystem::exists(model_name_or_path, ec)) return model_name_or_path;
  bool known = is_repo_id(model_name_or_path);
  for (const auto& a : model_aliases()) known = known || a.name == model_name_or_path;
  if (!known) {
    throw Error(model_name_or_path + ": no such file or folder, and not a model name (aliases: " + alias_list() +
                    "; or a Hub repo id like org/name)",
                exit_code::kNotDownloaded);
  }
  std::string repo_id = to_repo_id(model_name_or_path);
  RepoCache cache(default_cache_dir(), repo_id);
  if (auto snapshot = cache.find_snapshot("main")) return snapshot->string();
  throw Error(model_name_or_path + " (" + repo_id + ") is not downloaded in " + default_cache_dir().string() +
                  ": run `billion download " + model_name_or_path + "` first (or pass a path to a model folder)",
              exit_code::kNotDownloaded);
}

}  // namespace billion::hub
