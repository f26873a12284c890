#include "cli/model_path.h"

#include <filesystem>

#if __has_include("hub/model_alias.h")
#include "hub/model_alias.h"
#define BILLION_HAVE_HUB_ALIASES 1
#endif

namespace billion::cli {

std::string model_path(const std::string& model) {
  if (std::filesystem::exists(model)) return model;
#ifdef BILLION_HAVE_HUB_ALIASES
  return billion::resolve_model_path(model);
#else
  return model;  // inspect/load will report the missing path
#endif
}

}  // namespace billion::cli
