// Options shared by several subcommands (generate, chat, speculate, bench), declared once here
// so their names, defaults and help text cannot drift apart.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "generate/sampler.h"
#include "model/model.h"

namespace billion::cli {

struct SamplingFlags {
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  uint64_t seed = 0;
  void add_to(CLI::App* cmd);
  SamplingOptions options() const;
};

struct ModelFlags {
  std::string quantize;  // "", int8, int4
  int threads = 0;
  int context = 0;  // KV cache capacity; 0 = min(model context, 4096)
  std::string kv_type = "f16";
  void add_to(CLI::App* cmd, bool with_context = true);
  LoadOptions load_options() const;
  KVType kv() const;
  int capacity(const Model& model) const;
};

// Loads a model named by path, alias or repo id, with the flags' options.
std::unique_ptr<Model> load_model(const std::string& name, const ModelFlags& flags);

}  // namespace billion::cli
