// Turns a MODEL argument (path, alias such as smollm2-135m, or org/name) into a local path.
#pragma once
#include <string>

namespace billion::cli {
std::string model_path(const std::string& model);
}
