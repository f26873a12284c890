// Model names users type: short aliases for the project's target models, any "org/name" Hub
// repo id, or a path. resolve_model_path() is what every subcommand calls to turn a MODEL
// argument into a folder or file on disk.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace billion::hub {

struct ModelAlias {
  std::string name;
  std::string repo_id;
};

// All aliases, in the order `billion download --help` lists them.
const std::vector<ModelAlias>& model_aliases();
// The models `billion download` fetches when none is named (the four 1B-class targets).
std::vector<std::string> default_download_models();
// True for "org/name" with safe characters ([A-Za-z0-9._-], no "..", no leading/trailing -/.).
bool is_repo_id(const std::string& text);
// Alias → repo id; a repo id is returned as is; anything else throws billion::Error listing
// the aliases.
std::string to_repo_id(const std::string& name);
// "alias1, alias2, ..." for messages.
std::string alias_list();

// An existing file or folder is returned unchanged. An alias or org/name is looked up in the
// cache (HF_HUB_CACHE / HF_HOME): refs/main → snapshots/<commit>. A model that is not there
// throws billion::Error (exit code 9) saying how to download it.
std::string resolve_model_path(const std::string& model_name_or_path);

}  // namespace billion::hub

namespace billion {
// The rest of the program calls it as billion::resolve_model_path.
using hub::resolve_model_path;
}  // namespace billion
