// Entry point of `billion`: builds the subcommands from the registry, runs one, and turns any
// billion::Error into "error: <message>" on stderr with its exit code.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "core/error.h"

namespace billion::cli {

std::vector<CommandRegistration>& command_registry() {
  static std::vector<CommandRegistration> registry;
  return registry;
}

bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) != 0; }

}  // namespace billion::cli

int main(int argc, char** argv) {
  CLI::App app{"billion: run, evaluate, chat with and fine-tune 1B-class language models"};
  app.set_version_flag("--version", std::string("billion-llm ") + BILLION_VERSION + " (" + BILLION_GIT_REVISION + ")");
  app.require_subcommand(1);
  auto& registry = billion::cli::command_registry();
  std::sort(registry.begin(), registry.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
  for (const auto& command : registry) command.setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const billion::Error& e) {
    std::fflush(stdout);
    std::cerr << "error: " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
