// Errors: one exception type whose message always names the file (or thing) and the problem,
// so every bad input reaches the user as "FILE: what was wrong" and a non-zero exit.
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace billion {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, int exit_code = 1)
      : std::runtime_error(message), exit_code_(exit_code) {}
  // The process exit status the CLI uses for this error (1 unless a command documents others).
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Error("model.gguf", "tensor {} has {} dims", name, n) → "model.gguf: tensor x has 9 dims".
template <typename... Args>
[[noreturn]] void fail(const std::string& where, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(where + ": " + fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace billion
