// `billion quantize IN OUT --type q8_0|q4_0|q4_1|f16`: writes a GGUF file that llama.cpp and
// billion load, from a GGUF file (re-quantized) or a Hugging Face model folder (converted).
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/model_path.h"
#include "model/quantize_file.h"

namespace {

struct QuantizeOptions {
  std::string input, output, type = "q8_0", pre;
  int threads = 0;
  bool json = false;
};

void setup(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  auto* cmd = app.add_subcommand("quantize", "Write a model as a GGUF file with its matrices in one weight type");
  cmd->add_option("input", o->input, "A .gguf file, a Hugging Face model folder, or a model name from the cache")->required();
  cmd->add_option("output", o->output, "The .gguf file to write")->required();
  cmd->add_option("--type", o->type, "Weight type of the matrices: q8_0, q4_0, q4_1 or f16 (norms and biases stay f32)")
      ->capture_default_str();
  cmd->add_option("--pre", o->pre,
                  "Folder input: tokenizer.ggml.pre to record (llama.cpp's pre-tokenizer name, e.g. llama-bpe, smollm); "
                  "default \"default\"");
  cmd->add_option("--threads", o->threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the summary as one JSON object");
  cmd->callback([o] {
    billion::QuantizeFileOptions options;
    options.type = billion::parse_quantize_type(o->type);
    options.threads = o->threads;
    options.pre_tokenizer = o->pre;
    auto report = billion::quantize_model_file(billion::cli::model_path(o->input), o->output, options);
    if (o->json) {
      nlohmann::json j = {{"input", o->input}, {"input_format", report.input_format}, {"output", o->output},
                          {"type", billion::ggml_type_name(options.type)}, {"tensors", report.tensors},
                          {"converted", report.converted}, {"bytes", report.output_bytes}};
      std::cout << j.dump(2) << "\n";
    } else {
      std::cout << fmt::format("{}: {} tensors ({} matrices as {}), {:.1f} MB\n", o->output, report.tensors, report.converted,
                               billion::ggml_type_name(options.type), report.output_bytes / 1e6);
    }
  });
}

billion::cli::RegisterCommand registration(50, setup);

}  // namespace
