// `billion merge`: folds a PEFT LoRA adapter into its base model, W' = W + scale · B·A, and
// writes a Hugging Face folder (config and tokenizer files copied, one model.safetensors with
// every tensor in its original dtype). The base must be a Hugging Face folder: a GGUF base would
// need its q/k permutation and quantization undone first.
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/model_path.h"
#include "core/error.h"
#include "core/half.h"
#include "formats/hf_folder.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "train/lora.h"

namespace {
namespace fs = std::filesystem;
using namespace billion;

struct MergeOptions {
  std::string model, lora, out;
};

void run(const MergeOptions& o) {
  const std::string path = cli::model_path(o.model);
  if (!fs::is_directory(path)) fail(path, "merge needs a Hugging Face model folder as the base (GGUF bases are not supported yet)");
  // Only the architecture is needed (no tokenizer, no weight binding): HF folders keep HF order.
  const auto spec = spec_from_hf_config(read_json_file((fs::path(path) / "config.json").string()), path);
  const train::BaseLayout layout{false, spec.family == "gptneox" ? FusedQkvLayout::PerHead : FusedQkvLayout::None};
  auto set = train::load_peft(o.lora, spec, layout);
  const float scale = set.scale();
  std::map<std::string, const train::LoraModule*> by_weight;
  for (const auto& m : set.modules) by_weight[train::module_path(spec.family, m.layer, m.proj) + ".weight"] = &m;

  SafetensorsCheckpoint ckpt(path);
  fs::create_directories(o.out);
  // Header first (sizes are known), then the tensors one at a time.
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const auto& [name, t] : ckpt.tensors()) {
    header[name] = {{"dtype", safetensors_dtype_name(t->dtype)}, {"shape", t->shape}, {"data_offsets", {offset, offset + t->bytes.size()}}};
    offset += t->bytes.size();
  }
  std::string text = header.dump();
  while (text.size() % 8) text += ' ';
  const std::string out_file = (fs::path(o.out) / "model.safetensors").string();
  std::ofstream out(out_file, std::ios::binary);
  if (!out) fail(out_file, "cannot write");
  uint64_t len = text.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(text.data(), std::streamsize(text.size()));
  size_t merged = 0;
  for (const auto& [name, t] : ckpt.tensors()) {
    auto it = by_weight.find(name);
    if (it == by_weight.end()) {
      out.write(reinterpret_cast<const char*>(t->bytes.data()), std::streamsize(t->bytes.size()));
      continue;
    }
    const train::LoraModule& m = *it->second;
    if (t->shape.size() != 2 || int64_t(t->shape[0]) != m.out || int64_t(t->shape[1]) != m.in)
      fail(o.lora, "{} does not match the base tensor {}", train::module_path(spec.family, m.layer, m.proj), name);
    const int64_t r = set.rank;
    std::vector<uint8_t> buf(t->bytes.size());
    for (int64_t row = 0; row < m.out; ++row)
      for (int64_t col = 0; col < m.in; ++col) {
        const size_t idx = size_t(row * m.in + col);
        float w;
        uint16_t h;
        if (t->dtype == SafetensorsDtype::F32) std::memcpy(&w, t->bytes.data() + 4 * idx, 4);
        else {
          std::memcpy(&h, t->bytes.data() + 2 * idx, 2);
          w = t->dtype == SafetensorsDtype::F16 ? f16_to_f32(h) : bf16_to_f32(h);
        }
        double d = 0;
        for (int64_t k = 0; k < r; ++k) d += double(m.b[row * r + k]) * m.a[k * m.in + col];
        w = float(w + scale * d);
        if (t->dtype == SafetensorsDtype::F32) std::memcpy(buf.data() + 4 * idx, &w, 4);
        else {
          h = t->dtype == SafetensorsDtype::F16 ? f32_to_f16(w) : f32_to_bf16(w);
          std::memcpy(buf.data() + 2 * idx, &h, 2);
        }
      }
    out.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size()));
    ++merged;
  }
  if (!out) fail(out_file, "write failed");
  for (const auto& entry : fs::directory_iterator(path)) {
    const std::string fname = entry.path().filename().string();
    if (!entry.is_regular_file() || fname.find(".safetensors") != std::string::npos) continue;
    fs::copy_file(entry.path(), fs::path(o.out) / fname, fs::copy_options::overwrite_existing);
  }
  std::fprintf(stderr, "merged %zu LoRA modules (scale %g) into %s\n", merged, double(scale), o.out.c_str());
}

void setup(CLI::App& app) {
  auto o = std::make_shared<MergeOptions>();
  auto* cmd = app.add_subcommand("merge", "Merge a PEFT LoRA adapter into its base model and write a Hugging Face folder");
  cmd->add_option("--model,-m", o->model, "Base model folder (Hugging Face safetensors)")->required();
  cmd->add_option("--lora", o->lora, "PEFT adapter folder (adapter_config.json + adapter_model.safetensors)")->required();
  cmd->add_option("--out,-o", o->out, "Output folder")->required();
  cmd->callback([o] { run(*o); });
}

billion::cli::RegisterCommand registration(75, setup);

}  // namespace
