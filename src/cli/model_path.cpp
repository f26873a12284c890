#include "cli/model_path.h"

#include <filesystem>

#include "hub/model_alias.h"

namespace billion::cli {

std::string model_path(const std::string& model) {
  if (std::filesystem::exists(model)) return model;
  return billion::resolve_model_path(model);  // alias or org/name in the Hub cache, else a how-to Error
}

}  // namespace billion::cli
