// `billion info MODEL [--json]`: what a model file or folder holds, without loading weights.
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "cli/model_path.h"
#include "model/model_info.h"

namespace {

struct InfoOptions {
  std::string model;
  bool json = false;
};

void setup(CLI::App& app) {
  auto options = std::make_shared<InfoOptions>();
  auto* cmd = app.add_subcommand("info", "Show a model's architecture, sizes, dtypes, special tokens and chat template");
  cmd->add_option("model", options->model, "A .gguf file, a Hugging Face model folder, or a model name from the cache")->required();
  cmd->add_flag("--json", options->json, "Print one JSON object");
  cmd->callback([options] {
    auto info = billion::inspect_model(billion::cli::model_path(options->model));
    if (options->json) std::cout << info.to_json().dump(2) << "\n";
    else std::cout << info.to_text();
  });
}

billion::cli::RegisterCommand registration(10, setup);

}  // namespace
