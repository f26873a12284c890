// LoRA adapter creation, PEFT save/load and attachment to the inference decoder (see lora.h).
#include "train/lora.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "formats/hf_folder.h"
#include "formats/safetensors.h"
#include "model/model.h"

namespace billion::train {
namespace fs = std::filesystem;

namespace {
constexpr Proj kAllProj[kProjCount] = {Proj::Q, Proj::K, Proj::V, Proj::QKV, Proj::O, Proj::Gate, Proj::Up, Proj::Down};

bool is_neox(const std::string& family) { return family == "gptneox" || family == "gpt_neox"; }

// PEFT's config name for the family (model_type).
std::string model_type(const std::string& family) { return is_neox(family) ? "gpt_neox" : family; }

std::string a_key(const std::string& path) { return "base_model.model." + path + ".lora_A.weight"; }
std::string b_key(const std::string& path) { return "base_model.model." + path + ".lora_B.weight"; }

}  // namespace

float LoraAdapterSet::scale() const { return rslora ? alpha / std::sqrt(float(rank)) : alpha / float(rank); }

BaseLayout base_layout_of(const ModelWeights& weights, const std::string& format) {
  BaseLayout l;
  l.gguf = format == "gguf";
  l.fused = weights.layers.empty() ? FusedQkvLayout::None : weights.layers[0].fused;
  return l;
}

std::string proj_hf_name(const std::string& family, Proj p) {
  if (is_neox(family)) {
    switch (p) {
      case Proj::QKV: return "query_key_value";
      case Proj::O: return "dense";
      case Proj::Up: return "dense_h_to_4h";
      case Proj::Down: return "dense_4h_to_h";
      default: return "";
    }
  }
  switch (p) {
    case Proj::Q: return "q_proj";
    case Proj::K: return "k_proj";
    case Proj::V: return "v_proj";
    case Proj::O: return "o_proj";
    case Proj::Gate: return "gate_proj";
    case Proj::Up: return "up_proj";
    case Proj::Down: return "down_proj";
    default: return "";
  }
}

std::string module_path(const std::string& family, int layer, Proj p) {
  const std::string leaf = proj_hf_name(family, p);
  if (is_neox(family)) {
    const bool attn = p == Proj::QKV || p == Proj::O;
    return fmt::format("gpt_neox.layers.{}.{}.{}", layer, attn ? "attention" : "mlp", leaf);
  }
  const bool attn = p == Proj::Q || p == Proj::K || p == Proj::V || p == Proj::O;
  return fmt::format("model.layers.{}.{}.{}", layer, attn ? "self_attn" : "mlp", leaf);
}

std::vector<std::string> default_targets(const std::string& family) {
  if (is_neox(family)) return {"query_key_value"};
  return {"q_proj", "v_proj"};
}

std::vector<std::string> all_linear_targets(const std::string& family) {
  if (is_neox(family)) return {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"};
  return {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
}

const Linear* base_linear(const ModelWeights& w, int layer, Proj p) {
  const LayerWeights& L = w.layers.at(layer);
  switch (p) {
    case Proj::Q: return L.fused == FusedQkvLayout::None ? &L.q : nullptr;
    case Proj::K: return L.fused == FusedQkvLayout::None ? &L.k : nullptr;
    case Proj::V: return L.fused == FusedQkvLayout::None ? &L.v : nullptr;
    case Proj::QKV: return L.fused != FusedQkvLayout::None ? &L.qkv : nullptr;
    case Proj::O: return &L.o;
    case Proj::Gate: return L.gate.weight.data ? &L.gate : nullptr;
    case Proj::Up: return &L.up;
    case Proj::Down: return &L.down;
  }
  return nullptr;
}

std::vector<int64_t> hf_rows_of_engine_rows(const ArchitectureSpec& spec, const BaseLayout& layout, Proj p) {
  if (!layout.gguf) return {};
  const int64_t hd = spec.head_dim;
  if (spec.family == "llama" && spec.rope_style == RopeStyle::AdjacentPairs && (p == Proj::Q || p == Proj::K)) {
    // convert_hf_to_gguf permute: GGUF row 2i+j of a head = HF row j*(hd/2)+i.
    const int64_t heads = p == Proj::Q ? spec.n_heads : spec.n_kv_heads;
    std::vector<int64_t> map(heads * hd);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < hd / 2; ++i)
        for (int64_t j = 0; j < 2; ++j) map[h * hd + 2 * i + j] = h * hd + j * (hd / 2) + i;
    return map;
  }
  if (p == Proj::QKV && layout.fused == FusedQkvLayout::Blocks) {
    // GGUF [all q; all k; all v] vs HF per head [n_heads, 3, hd] (GPT-NeoX has no GQA).
    const int64_t nh = spec.n_heads, qd = nh * hd;
    std::vector<int64_t> map(3 * qd);
    for (int64_t part = 0; part < 3; ++part)
      for (int64_t h = 0; h < nh; ++h)
        for (int64_t d = 0; d < hd; ++d) map[part * qd + h * hd + d] = h * 3 * hd + part * hd + d;
    return map;
  }
  return {};
}

LoraAdapterSet create_lora(const ArchitectureSpec& spec, const ModelWeights& weights, const LoraConfig& config, uint64_t seed) {
  if (config.rank <= 0) throw Error(fmt::format("--rank must be positive (got {})", config.rank));
  if (config.dropout < 0 || config.dropout >= 1) throw Error(fmt::format("--lora-dropout must be in [0, 1) (got {})", config.dropout));
  LoraAdapterSet set;
  set.rank = config.rank;
  set.alpha = config.alpha;
  set.dropout = config.dropout;
  set.rslora = config.rslora;
  set.targets = config.targets.empty() ? default_targets(spec.family) : config.targets;
  if (set.targets.size() == 1 && set.targets[0] == "all-linear") set.targets = all_linear_targets(spec.family);
  std::vector<bool> wanted(kProjCount, false);
  for (const auto& t : set.targets) {
    bool found = false;
    for (Proj p : kAllProj)
      if (proj_hf_name(spec.family, p) == t) wanted[int(p)] = found = true;
    if (!found) {
      auto all = all_linear_targets(spec.family);
      throw Error(fmt::format("--targets: {} is not a linear module of a {} model (choose from {}, or all-linear)", t, spec.family,
                              fmt::join(all, ",")));
    }
  }
  std::mt19937_64 rng(seed);
  for (int layer = 0; layer < spec.n_layers; ++layer)
    for (Proj p : kAllProj) {
      if (!wanted[int(p)]) continue;
      const Linear* base = base_linear(weights, layer, p);
      if (!base) continue;
      LoraModule m;
      m.layer = layer;
      m.proj = p;
      m.in = base->weight.cols;
      m.out = base->weight.rows;
      m.a.resize(size_t(set.rank) * m.in);
      m.b.assign(size_t(m.out) * set.rank, 0.0f);
      const double bound = 1.0 / std::sqrt(double(m.in));
      for (auto& x : m.a) x = float(-bound + 2 * bound * (double(rng() >> 11) * 0x1.0p-53));
      set.modules.push_back(std::move(m));
    }
  if (set.modules.empty()) throw Error("LoRA: no module of the model matches the targets");
  return set;
}

void write_safetensors_f32(const std::string& path, const std::vector<NamedTensor>& tensors,
                           const std::vector<std::pair<std::string, std::string>>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t n = 1;
    for (auto d : t.shape) n *= uint64_t(d);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + n * 4}}};
    offset += n * 4;
  }
  std::string text = header.dump();
  while (text.size() % 8) text += ' ';  // keeps the data 8-byte aligned, as safetensors writes it
  std::ofstream out(path, std::ios::binary);
  if (!out) fail(path, "cannot write");
  uint64_t len = text.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(text.data(), std::streamsize(text.size()));
  for (const auto& t : tensors) {
    uint64_t n = 1;
    for (auto d : t.shape) n *= uint64_t(d);
    out.write(reinterpret_cast<const char*>(t.data), std::streamsize(n * 4));
  }
  if (!out) fail(path, "write failed");
}

void save_peft(const LoraAdapterSet& set, const ArchitectureSpec& spec, const BaseLayout& layout, const std::string& dir,
               const std::string& base_model_name) {
  fs::create_directories(dir);
  // Tensors in HF row order; kept alive until written.
  std::vector<std::vector<float>> b_hf(set.modules.size());
  std::vector<NamedTensor> tensors;
  for (size_t i = 0; i < set.modules.size(); ++i) {
    const auto& m = set.modules[i];
    auto map = hf_rows_of_engine_rows(spec, layout, m.proj);
    b_hf[i] = m.b;
    if (!map.empty())
      for (int64_t r = 0; r < m.out; ++r) std::memcpy(&b_hf[i][map[r] * set.rank], &m.b[r * set.rank], set.rank * sizeof(float));
    std::string path = module_path(spec.family, m.layer, m.proj);
    tensors.push_back({a_key(path), {set.rank, m.in}, m.a.data()});
    tensors.push_back({b_key(path), {m.out, set.rank}, b_hf[i].data()});
  }
  std::sort(tensors.begin(), tensors.end(), [](const NamedTensor& x, const NamedTensor& y) { return x.name < y.name; });
  write_safetensors_f32((fs::path(dir) / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  nlohmann::ordered_json cfg = {
      {"alpha_pattern", nlohmann::json::object()}, {"auto_mapping", nullptr}, {"base_model_name_or_path", base_model_name},
      {"bias", "none"}, {"fan_in_fan_out", false}, {"inference_mode", true}, {"init_lora_weights", true},
      {"layers_pattern", nullptr}, {"layers_to_transform", nullptr}, {"lora_alpha", set.alpha}, {"lora_bias", false},
      {"lora_dropout", set.dropout}, {"modules_to_save", nullptr}, {"peft_type", "LORA"}, {"r", set.rank},
      {"rank_pattern", nlohmann::json::object()}, {"revision", nullptr}, {"target_modules", set.targets},
      {"task_type", "CAUSAL_LM"}, {"use_dora", false}, {"use_rslora", set.rslora},
      // Not PEFT's: lets `billion` refuse an adapter trained for another base.
      {"billion_base", {{"model_type", model_type(spec.family)}, {"hidden_size", spec.hidden}, {"num_hidden_layers", spec.n_layers}}}};
  std::ofstream out(fs::path(dir) / "adapter_config.json");
  out << cfg.dump(2) << "\n";
  if (!out) fail(dir, "cannot write adapter_config.json");
}

namespace {
std::vector<float> tensor_floats(const SafetensorsTensor& t) {
  std::vector<float> v(t.n_elements);
  const uint8_t* p = t.bytes.data();
  for (uint64_t i = 0; i < t.n_elements; ++i) {
    if (t.dtype == SafetensorsDtype::F32) std::memcpy(&v[i], p + 4 * i, 4);
    else {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      v[i] = t.dtype == SafetensorsDtype::F16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
  }
  return v;
}
}  // namespace

LoraAdapterSet load_peft(const std::string& dir, const ArchitectureSpec& spec, const BaseLayout& layout) {
  const std::string cfg_path = (fs::path(dir) / "adapter_config.json").string();
  const std::string st_path = (fs::path(dir) / "adapter_model.safetensors").string();
  if (!fs::exists(cfg_path)) fail(dir, "not a PEFT adapter folder: adapter_config.json is missing");
  if (!fs::exists(st_path)) fail(dir, "adapter_model.safetensors is missing (only the safetensors format is read)");
  auto cfg = read_json_file(cfg_path);
  if (cfg.value("peft_type", "LORA") != "LORA") fail(cfg_path, "peft_type is {}, only LORA adapters are supported", cfg.value("peft_type", ""));
  if (cfg.value("use_dora", false)) fail(cfg_path, "DoRA adapters are not supported");
  if (cfg.value("fan_in_fan_out", false)) fail(cfg_path, "fan_in_fan_out adapters are not supported");
  if (cfg.contains("rank_pattern") && cfg["rank_pattern"].is_object() && !cfg["rank_pattern"].empty())
    fail(cfg_path, "rank_pattern is not supported");
  if (cfg.contains("alpha_pattern") && cfg["alpha_pattern"].is_object() && !cfg["alpha_pattern"].empty())
    fail(cfg_path, "alpha_pattern is not supported");
  if (cfg.contains("billion_base")) {
    const auto& b = cfg["billion_base"];
    if (b.value("model_type", "") != model_type(spec.family) || b.value("hidden_size", 0) != spec.hidden ||
        b.value("num_hidden_layers", 0) != spec.n_layers)
      fail(dir, "the adapter was trained for a {} model (hidden {}, {} layers) but the base is {} (hidden {}, {} layers)",
           b.value("model_type", "?"), b.value("hidden_size", 0), b.value("num_hidden_layers", 0), model_type(spec.family), spec.hidden,
           spec.n_layers);
  }
  LoraAdapterSet set;
  set.rank = cfg.value("r", 8);
  set.alpha = cfg.value("lora_alpha", 8.0f);
  set.dropout = cfg.value("lora_dropout", 0.0f);
  set.rslora = cfg.value("use_rslora", false);
  if (cfg.contains("target_modules") && cfg["target_modules"].is_array()) set.targets = cfg["target_modules"].get<std::vector<std::string>>();

  std::map<std::string, std::pair<int, Proj>> paths;
  for (int layer = 0; layer < spec.n_layers; ++layer)
    for (Proj p : kAllProj)
      if (!proj_hf_name(spec.family, p).empty()) paths[module_path(spec.family, layer, p)] = {layer, p};

  SafetensorsFile file(st_path);
  std::map<std::pair<int, int>, LoraModule> found;
  for (const auto& [name, t] : file.tensors()) {
    // base_model.model.<path>.lora_{A,B}[.<adapter name>].weight
    const std::string prefix = "base_model.model.";
    auto pos_a = name.find(".lora_A."), pos_b = name.find(".lora_B.");
    if (name.rfind(prefix, 0) != 0 || (pos_a == std::string::npos && pos_b == std::string::npos))
      fail(st_path, "tensor {} is not a LoRA A/B weight (only LoRA adapters without extra saved modules are supported)", name);
    const bool is_a = pos_a != std::string::npos;
    std::string path = name.substr(prefix.size(), (is_a ? pos_a : pos_b) - prefix.size());
    auto it = paths.find(path);
    if (it == paths.end())
      fail(dir, "the adapter has weights for {}, which the base model ({} with {} layers) does not have: the adapter belongs to another base",
           path, spec.family, spec.n_layers);
    auto [layer, proj] = it->second;
    // A model_weights-free shape check: in/out from the spec.
    const int64_t hd = spec.head_dim, qd = int64_t(spec.n_heads) * hd, kvd = int64_t(spec.n_kv_heads) * hd;
    int64_t in = spec.hidden, out = spec.hidden;
    switch (proj) {
      case Proj::Q: out = qd; break;
      case Proj::K: case Proj::V: out = kvd; break;
      case Proj::QKV: out = qd + 2 * kvd; break;
      case Proj::O: in = qd; break;
      case Proj::Gate: case Proj::Up: out = spec.intermediate; break;
      case Proj::Down: in = spec.intermediate; break;
    }
    std::vector<int64_t> want = is_a ? std::vector<int64_t>{set.rank, in} : std::vector<int64_t>{out, set.rank};
    std::vector<int64_t> have(t.shape.begin(), t.shape.end());
    if (have != want)
      fail(dir, "tensor {} has shape [{}] but the base model needs [{}] (r = {}): the adapter does not match this base", name,
           fmt::join(have, ", "), fmt::join(want, ", "), set.rank);
    LoraModule& m = found[{layer, int(proj)}];
    m.layer = layer;
    m.proj = proj;
    m.in = in;
    m.out = out;
    if (is_a) m.a = tensor_floats(t);
    else m.b = tensor_floats(t);
  }
  for (auto& [key, m] : found) {
    if (m.a.empty() || m.b.empty()) fail(st_path, "{} has only one of lora_A / lora_B", module_path(spec.family, m.layer, m.proj));
    auto map = hf_rows_of_engine_rows(spec, layout, m.proj);
    if (!map.empty()) {
      std::vector<float> b(m.b.size());
      for (int64_t r = 0; r < m.out; ++r) std::memcpy(&b[r * set.rank], &m.b[map[r] * set.rank], set.rank * sizeof(float));
      m.b = std::move(b);
    }
    set.modules.push_back(std::move(m));
  }
  if (set.modules.empty()) fail(st_path, "no LoRA tensors");
  return set;
}

void attach_lora(Model& model, const LoraAdapterSet& set) { attach_lora(model.decoder().mutable_weights(), set, model.path()); }

void attach_lora(ModelWeights& w, const LoraAdapterSet& set, const std::string& where) {
  for (const auto& m : set.modules) {
    Linear* l = const_cast<Linear*>(base_linear(w, m.layer, m.proj));
    if (!l || l->weight.rows != m.out || l->weight.cols != m.in)
      fail(where, "the adapter's module {} of layer {} does not fit this model", int(m.proj), m.layer);
    auto a = std::make_shared<LoraAdapter>();
    a->rank = set.rank;
    a->scale = set.scale();
    a->a = m.a;
    a->b = m.b;
    l->lora = std::move(a);
  }
}

void attach_peft_adapter(Model& model, const std::string& dir) {
  auto set = load_peft(dir, model.spec(), base_layout_of(model.decoder().weights(), model.format()));
  attach_lora(model, set);
}

}  // namespace billion::train
