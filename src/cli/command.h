// Subcommand registry: each cmd_*.cpp declares its options once with CLI11 and registers a
// setup function; main() builds the parser from the registry. Adding a subcommand touches no
// other file.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace billion::cli {

struct CommandRegistration {
  int order;  // position in --help
  std::function<void(CLI::App&)> setup;
};

std::vector<CommandRegistration>& command_registry();

struct RegisterCommand {
  RegisterCommand(int order, std::function<void(CLI::App&)> setup) {
    command_registry().push_back({order, std::move(setup)});
  }
};

// True when stdout is a terminal (progress bars, colours, side-by-side columns).
bool stdout_is_terminal();

}  // namespace billion::cli
