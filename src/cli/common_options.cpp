#include "cli/common_options.h"

#include <algorithm>

#include "cli/model_path.h"
#include "core/error.h"

namespace billion::cli {

void SamplingFlags::add_to(CLI::App* cmd) {
  cmd->add_option("--temp", temperature, "Sampling temperature; 0 = greedy")->capture_default_str()->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("--top-k", top_k, "Keep the k most likely tokens; 0 = off")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", top_p, "Nucleus sampling mass; 1 = off")->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--min-p", min_p, "Drop tokens below min-p × the best probability; 0 = off")->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--repeat-penalty", repetition_penalty, "Repetition penalty (transformers' rule); 1 = off")->capture_default_str()->check(CLI::Range(0.01f, 100.0f));
  cmd->add_option("--presence-penalty", presence_penalty, "Subtracted from the logit of every token already seen; 0 = off")->capture_default_str();
  cmd->add_option("--seed", seed, "Random seed for sampling")->capture_default_str();
}

SamplingOptions SamplingFlags::options() const {
  return {temperature, top_k, top_p, min_p, repetition_penalty, presence_penalty, seed};
}

void ModelFlags::add_to(CLI::App* cmd, bool with_context) {
  cmd->add_option("--quantize", quantize, "Quantize float weights at load: int8 (Q8_0) or int4 (Q4_0)")->check(CLI::IsMember({"int8", "int4"}));
  cmd->add_option("--threads", threads, "Worker threads; 0 = physical cores")->capture_default_str()->check(CLI::Range(0, 1024));
  if (with_context) {
    cmd->add_option("--ctx", context, "Context size in tokens (KV cache); 0 = the model's, at most 4096")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--kv-type", kv_type, "KV cache precision: f16 or f32")->capture_default_str()->check(CLI::IsMember({"f16", "f32"}));
  }
}

LoadOptions ModelFlags::load_options() const { return {parse_load_quantization(quantize)}; }

KVType ModelFlags::kv() const { return kv_type == "f32" ? KVType::F32 : KVType::F16; }

int ModelFlags::capacity(const Model& model) const {
  int model_context = model.spec().context_length;
  return context > 0 ? std::min(context, model_context) : std::min(model_context, 4096);
}

std::unique_ptr<Model> load_model(const std::string& name, const ModelFlags& flags) {
  return Model::load(model_path(name), flags.load_options());
}

}  // namespace billion::cli
