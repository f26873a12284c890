// quantize_model_file: GGUF → GGUF re-quantization and Hugging Face folder → GGUF conversion.
// Every output tensor is a producer that decodes its source rows to float, rearranges them if
// the GGUF layout differs, and encodes them in the output type; GgufWriter::write calls the
// producers one at a time, so memory stays at one tensor.
#include "model/quantize_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>

#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/hf_folder.h"
#include "formats/safetensors.h"
#include "kernels/quant.h"
#include "model/architecture.h"

namespace billion {
namespace fs = std::filesystem;
namespace {

// A source of float rows: rows × cols, row r written to out[cols] on demand (thread-safe).
struct FloatRows {
  int64_t rows = 0, cols = 0;
  std::function<void(int64_t r, float* out)> row;
};

FloatRows stored_rows(GgmlType type, const uint8_t* data, int64_t rows, int64_t cols) {
  size_t row_bytes = kernels::type_row_bytes(type, cols);
  return {rows, cols, [=](int64_t r, float* out) { kernels::dequantize_row(type, data + r * row_bytes, out, cols); }};
}

// Output row r comes from source row map(r) (a permutation of rows).
FloatRows permuted(FloatRows src, std::function<int64_t(int64_t)> map) {
  auto inner = src.row;
  src.row = [inner, map](int64_t r, float* out) { inner(map(r), out); };
  return src;
}

// Encodes the rows in `type` when the producer runs (rows split across the pool).
GgufWriter::TensorProducer encode(FloatRows src, GgmlType type, ThreadPool& pool) {
  return [src, type, &pool]() {
    const size_t row_bytes = kernels::type_row_bytes(type, src.cols);
    std::vector<uint8_t> out(row_bytes * src.rows);  // [rows, row_bytes]
    pool.parallel_for(src.rows, [&](int64_t begin, int64_t end) {
      std::vector<float> tmp(src.cols);
      for (int64_t r = begin; r < end; ++r) {
        src.row(r, tmp.data());
        kernels::quantize_row(type, tmp.data(), out.data() + r * row_bytes, src.cols);
      }
    });
    return out;
  };
}

uint32_t file_type_id(GgmlType type) {  // llama.cpp's LLAMA_FTYPE_MOSTLY_*
  switch (type) {
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q4_1: return 3;
    case GgmlType::Q8_0: return 7;
    default: return 0;
  }
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The type a matrix [rows, cols] is written in: the target, or F16 when its rows do not fill
// whole blocks (llama.cpp's converter falls back the same way).
GgmlType matrix_type(GgmlType target, int64_t cols) {
  return cols % kernels::type_block_elements(target) == 0 ? target : GgmlType::F16;
}

void set_common_metadata(GgufWriter& w, GgmlType type) {
  w.set_u32("general.file_type", file_type_id(type));
  w.set_u32("general.quantization_version", 2);
}

// ---------------------------------------------------------------------------------------------
// GGUF → GGUF

QuantizeFileReport requantize_gguf(const std::string& input, const std::string& output, const QuantizeFileOptions& options,
                                   ThreadPool& pool) {
  GgufFile in(input);
  GgufWriter w(in.alignment());
  for (const auto& [key, value] : in.metadata()) w.set(key, value);
  set_common_metadata(w, options.type);
  QuantizeFileReport report{"gguf"};
  for (const auto& t : in.tensors()) {
    // Matrices (not norms) that our dequantizer reads and whose rows fill the target's blocks.
    bool matrix = t.dims.size() == 2 && !ends_with(t.name, "_norm.weight") && kernels::weight_type_supported(t.type) &&
                  t.dims[0] % kernels::type_block_elements(options.type) == 0;
    if (matrix && t.type != options.type) {
      FloatRows rows = stored_rows(t.type, t.data, static_cast<int64_t>(t.dims[1]), static_cast<int64_t>(t.dims[0]));
      w.add_tensor(t.name, options.type, t.dims, encode(rows, options.type, pool));
      ++report.converted;
    } else {
      const uint8_t* data = t.data;
      uint64_t n = t.n_bytes;
      w.add_tensor(t.name, t.type, t.dims, GgufWriter::TensorProducer([data, n] { return std::vector<uint8_t>(data, data + n); }));
    }
    ++report.tensors;
  }
  w.write(output);
  return report;
}

// ---------------------------------------------------------------------------------------------
// Hugging Face folder → GGUF

GgmlType safetensors_type(SafetensorsDtype d) {
  return d == SafetensorsDtype::F32 ? GgmlType::F32 : d == SafetensorsDtype::F16 ? GgmlType::F16 : GgmlType::BF16;
}

class HfConverter {
 public:
  HfConverter(const std::string& folder, const QuantizeFileOptions& options, ThreadPool& pool)
      : folder_(folder), options_(options), pool_(pool), checkpoint_(folder) {
    config_ = read_json_file(folder + "/config.json");
    spec_ = spec_from_hf_config(config_, folder + "/config.json");
  }

  QuantizeFileReport run(const std::string& output) {
    const std::string arch = spec_.family;
    write_spec_to_gguf(spec_, w_);
    w_.set_string("general.name", fs::path(folder_).filename().string());
    set_common_metadata(w_, options_.type);
    write_tokenizer();
    if (arch == "gptneox") gptneox_tensors();
    else llama_like_tensors();
    w_.write(output);
    return report_;
  }

 private:
  const SafetensorsTensor& get(const std::string& name) {
    const auto* t = checkpoint_.find(name);
    if (!t) fail(folder_, "missing tensor {}", name);
    return *t;
  }
  bool has(const std::string& name) const { return checkpoint_.find(name) != nullptr; }

  FloatRows rows_of(const std::string& name, int64_t rows, int64_t cols) {
    const auto& t = get(name);
    if (t.n_elements != uint64_t(rows * cols)) fail(folder_, "tensor {} has {} elements, expected {}x{}", name, t.n_elements, rows, cols);
    return stored_rows(safetensors_type(t.dtype), t.bytes.data(), rows, cols);
  }

  void matrix(const std::string& gguf_name, FloatRows rows) {
    GgmlType type = matrix_type(options_.type, rows.cols);
    w_.add_tensor(gguf_name, type, {uint64_t(rows.cols), uint64_t(rows.rows)}, encode(rows, type, pool_));
    ++report_.tensors;
    ++report_.converted;
  }
  void matrix(const std::string& gguf_name, const std::string& hf_name, int64_t rows, int64_t cols) {
    matrix(gguf_name, rows_of(hf_name, rows, cols));
  }
  // A vector (norm weight or bias) or a stack of them as one F32 tensor with the given dims.
  void vector(const std::string& gguf_name, FloatRows rows, std::vector<uint64_t> dims) {
    w_.add_tensor(gguf_name, GgmlType::F32, dims, encode(rows, GgmlType::F32, pool_));
    ++report_.tensors;
  }
  void vector(const std::string& gguf_name, const std::string& hf_name, int64_t n) {
    vector(gguf_name, rows_of(hf_name, 1, n), {uint64_t(n)});
  }

  // Llama (with the q/k permutation to adjacent-pair rope) and StableLM (half-split rope kept).
  void llama_like_tensors() {
    const bool llama = spec_.family == "llama", ln = spec_.norm == NormKind::LayerNorm;
    const int64_t h = spec_.hidden, hd = spec_.head_dim, q_dim = int64_t(spec_.n_heads) * hd, kv_dim = int64_t(spec_.n_kv_heads) * hd;
    matrix("token_embd.weight", "model.embed_tokens.weight", spec_.vocab_size, h);
    vector("output_norm.weight", "model.norm.weight", h);
    if (ln) vector("output_norm.bias", "model.norm.bias", h);
    if (!spec_.tied_embeddings) matrix("output.weight", "lm_head.weight", spec_.vocab_size, h);
    if (llama && spec_.llama3_scaling) rope_freqs();
    // HF rotate_half rows [head, 2, hd/2] → GGUF adjacent pairs [head, hd/2, 2].
    auto permute = [hd](int64_t r) {
      int64_t head = r / hd, j = (r % hd) / 2, s = r % 2;
      return head * hd + s * (hd / 2) + j;
    };
    for (int i = 0; i < spec_.n_layers; ++i) {
      std::string p = fmt::format("model.layers.{}.", i), b = fmt::format("blk.{}.", i);
      vector(b + "attn_norm.weight", p + "input_layernorm.weight", h);
      if (ln) vector(b + "attn_norm.bias", p + "input_layernorm.bias", h);
      if (has(p + "post_attention_layernorm.weight")) {
        vector(b + "ffn_norm.weight", p + "post_attention_layernorm.weight", h);
        if (ln) vector(b + "ffn_norm.bias", p + "post_attention_layernorm.bias", h);
      }
      FloatRows q = rows_of(p + "self_attn.q_proj.weight", q_dim, h), k = rows_of(p + "self_attn.k_proj.weight", kv_dim, h);
      matrix(b + "attn_q.weight", llama ? permuted(q, permute) : q);
      matrix(b + "attn_k.weight", llama ? permuted(k, permute) : k);
      matrix(b + "attn_v.weight", p + "self_attn.v_proj.weight", kv_dim, h);
      matrix(b + "attn_output.weight", p + "self_attn.o_proj.weight", h, q_dim);
      const std::pair<const char*, int64_t> biases[] = {{"q", q_dim}, {"k", kv_dim}, {"v", kv_dim}};
      for (auto [x, n] : biases) {
        std::string name = p + "self_attn." + x + "_proj.bias";
        if (!has(name)) continue;
        FloatRows bias = rows_of(name, n, 1);  // one element per row, so the permutation applies
        if (llama && std::string(x) != "v") bias = permuted(bias, permute);
        vector(b + "attn_" + x + ".bias", FloatRows{1, n, [bias](int64_t, float* out) {
                                                      for (int64_t e = 0; e < bias.rows; ++e) bias.row(e, out + e);
                                                    }},
               {uint64_t(n)});
      }
      if (spec_.qk_layernorm) {
        auto stack = [&](const char* which, int heads) {
          std::vector<FloatRows> norms;
          for (int head = 0; head < heads; ++head)
            norms.push_back(rows_of(fmt::format("{}self_attn.{}_layernorm.norms.{}.weight", p, which, head), 1, hd));
          return FloatRows{heads, hd, [norms](int64_t r, float* out) { norms[r].row(0, out); }};
        };
        vector(b + "attn_q_norm.weight", stack("q", spec_.n_heads), {uint64_t(hd), uint64_t(spec_.n_heads)});
        vector(b + "attn_k_norm.weight", stack("k", spec_.n_kv_heads), {uint64_t(hd), uint64_t(spec_.n_kv_heads)});
      }
      matrix(b + "ffn_gate.weight", p + "mlp.gate_proj.weight", spec_.intermediate, h);
      matrix(b + "ffn_up.weight", p + "mlp.up_proj.weight", spec_.intermediate, h);
      matrix(b + "ffn_down.weight", p + "mlp.down_proj.weight", h, spec_.intermediate);
    }
  }

  // GPT-NeoX: the fused QKV rows [head, 3, hd] become [3, head, hd] blocks (q; k; v).
  void gptneox_tensors() {
    const int64_t h = spec_.hidden, hd = spec_.head_dim, heads = spec_.n_heads, q_dim = heads * hd;
    matrix("token_embd.weight", "gpt_neox.embed_in.weight", spec_.vocab_size, h);
    vector("output_norm.weight", "gpt_neox.final_layer_norm.weight", h);
    vector("output_norm.bias", "gpt_neox.final_layer_norm.bias", h);
    matrix("output.weight", has("embed_out.weight") ? "embed_out.weight" : "lm_head.weight", spec_.vocab_size, h);
    auto blocks = [=](int64_t r) {
      int64_t block = r / q_dim, head = (r % q_dim) / hd, j = r % hd;
      return head * 3 * hd + block * hd + j;
    };
    for (int i = 0; i < spec_.n_layers; ++i) {
      std::string p = fmt::format("gpt_neox.layers.{}.", i), b = fmt::format("blk.{}.", i);
      vector(b + "attn_norm.weight", p + "input_layernorm.weight", h);
      vector(b + "attn_norm.bias", p + "input_layernorm.bias", h);
      vector(b + "ffn_norm.weight", p + "post_attention_layernorm.weight", h);
      vector(b + "ffn_norm.bias", p + "post_attention_layernorm.bias", h);
      matrix(b + "attn_qkv.weight", permuted(rows_of(p + "attention.query_key_value.weight", 3 * q_dim, h), blocks));
      FloatRows bias = permuted(rows_of(p + "attention.query_key_value.bias", 3 * q_dim, 1), blocks);
      vector(b + "attn_qkv.bias", FloatRows{1, 3 * q_dim, [bias](int64_t, float* out) {
                                              for (int64_t e = 0; e < bias.rows; ++e) bias.row(e, out + e);
                                            }},
             {uint64_t(3 * q_dim)});
      matrix(b + "attn_output.weight", p + "attention.dense.weight", h, q_dim);
      vector(b + "attn_output.bias", p + "attention.dense.bias", h);
      matrix(b + "ffn_up.weight", p + "mlp.dense_h_to_4h.weight", spec_.intermediate, h);
      vector(b + "ffn_up.bias", p + "mlp.dense_h_to_4h.bias", spec_.intermediate);
      matrix(b + "ffn_down.weight", p + "mlp.dense_4h_to_h.weight", h, spec_.intermediate);
      vector(b + "ffn_down.bias", p + "mlp.dense_4h_to_h.bias", h);
    }
  }

  // Llama 3 scaling as llama.cpp reads it: a divisor per rotary frequency (convert_hf_to_gguf's
  // rope_freqs: 1 above the high-frequency wavelength, `factor` below the low one, smooth between).
  void rope_freqs() {
    const auto& s = *spec_.llama3_scaling;
    const int half = spec_.rotary_dims / 2;
    auto divisors = std::make_shared<std::vector<float>>(half);
    const double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
    const double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
    for (int i = 0; i < half; ++i) {
      // float32 frequencies as the converter computes them with torch
      float freq = 1.0f / std::pow(static_cast<float>(spec_.rope_theta), static_cast<float>(2 * i) / spec_.rotary_dims);
      double wavelen = 2 * M_PI / freq;
      double d = 1;
      if (wavelen > low_wavelen) {
        d = s.factor;
      } else if (wavelen >= high_wavelen) {
        double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        d = 1 / ((1 - smooth) / s.factor + smooth);
      }
      (*divisors)[i] = static_cast<float>(d);
    }
    vector("rope_freqs.weight", FloatRows{1, half, [divisors](int64_t, float* out) { std::copy(divisors->begin(), divisors->end(), out); }},
           {uint64_t(half)});
  }

  // tokenizer.ggml.* from a byte-level BPE tokenizer.json (GPT-2, SmolLM2, Llama 3, Pythia).
  void write_tokenizer() {
    const std::string path = folder_ + "/tokenizer.json";
    if (!fs::exists(path)) fail(folder_, "no tokenizer.json: GGUF conversion needs the tokenizer (byte-level BPE)");
    auto j = read_json_file(path);
    const auto& model = j.value("model", nlohmann::json::object());
    bool byte_level = model.value("type", std::string()) == "BPE" && j.value("pre_tokenizer", nlohmann::json()).dump().find("ByteLevel") != std::string::npos;
    if (!byte_level)
      fail(path, "only byte-level BPE tokenizers can be written to GGUF here (this one is SentencePiece-style); "
                 "convert the folder with llama.cpp's convert_hf_to_gguf.py and quantize that GGUF instead");
    const int n = spec_.vocab_size;
    std::vector<std::string> tokens(n);
    std::vector<int32_t> types(n, 5);  // UNUSED for ids no token names (padding rows)
    std::map<std::string, int> by_text;
    auto place = [&](int id, const std::string& text, int type) {
      if (id < 0 || id >= n) fail(path, "token {} has id {} outside the model's vocabulary of {}", text, id, n);
      tokens[id] = text;
      types[id] = type;
      by_text[text] = id;
    };
    for (const auto& [text, id] : model["vocab"].items()) place(id.get<int>(), text, 1);
    for (const auto& a : j.value("added_tokens", nlohmann::json::array()))
      place(a["id"].get<int>(), a["content"].get<std::string>(), a.value("special", false) ? 3 : 4);
    for (int i = 0; i < n; ++i)
      if (tokens[i].empty()) tokens[i] = fmt::format("[PAD{}]", i);
    std::vector<std::string> merges;
    for (const auto& m : model.value("merges", nlohmann::json::array()))
      merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
    w_.set_string("tokenizer.ggml.model", "gpt2");
    w_.set_string("tokenizer.ggml.pre", options_.pre_tokenizer.empty() ? "default" : options_.pre_tokenizer);
    w_.set_string_array("tokenizer.ggml.tokens", tokens);
    w_.set_i32_array("tokenizer.ggml.token_type", types);
    w_.set_string_array("tokenizer.ggml.merges", merges);
    auto tc = read_tokenizer_config(folder_);
    auto id_of = [&](const std::optional<std::string>& text, const char* config_key) -> std::optional<int> {
      if (text && by_text.count(*text)) return by_text[*text];
      if (config_.contains(config_key)) {
        const auto& v = config_[config_key];
        if (v.is_number_integer()) return v.get<int>();
        if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int>();
      }
      return std::nullopt;
    };
    if (auto id = id_of(tc.bos_token, "bos_token_id")) w_.set_u32("tokenizer.ggml.bos_token_id", *id);
    if (auto id = id_of(tc.eos_token, "eos_token_id")) w_.set_u32("tokenizer.ggml.eos_token_id", *id);
    w_.set_bool("tokenizer.ggml.add_bos_token", tc.add_bos_token.value_or(false));
    if (tc.chat_template) w_.set_string("tokenizer.chat_template", *tc.chat_template);
  }

  std::string folder_;
  const QuantizeFileOptions& options_;
  ThreadPool& pool_;
  SafetensorsCheckpoint checkpoint_;
  nlohmann::json config_;
  ArchitectureSpec spec_;
  GgufWriter w_;
  QuantizeFileReport report_{"safetensors"};
};

}  // namespace

GgmlType parse_quantize_type(const std::string& text) {
  std::string t = text;
  for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (t == "q8_0") return GgmlType::Q8_0;
  if (t == "q4_0") return GgmlType::Q4_0;
  if (t == "q4_1") return GgmlType::Q4_1;
  if (t == "f16") return GgmlType::F16;
  throw Error(fmt::format("--type: unknown weight type {} (q8_0, q4_0, q4_1 or f16)", text));
}

QuantizeFileReport quantize_model_file(const std::string& input, const std::string& output, const QuantizeFileOptions& options) {
  // F32 (library only, not a CLI --type): a dequantized float reference, e.g. for bench_quant_quality.
  if (options.type != GgmlType::Q8_0 && options.type != GgmlType::Q4_0 && options.type != GgmlType::Q4_1 && options.type != GgmlType::F16 &&
      options.type != GgmlType::F32)
    fail(output, "cannot write weight type {} (q8_0, q4_0, q4_1 or f16)", ggml_type_name(options.type));
  if (!fs::exists(input)) fail(input, "no such file or folder");
  if (fs::exists(output) && fs::equivalent(input, output)) fail(output, "the output would overwrite the input");
  ThreadPool pool(options.threads);
  QuantizeFileReport report;
  if (fs::is_directory(input)) {
    if (!fs::exists(fs::path(input) / "config.json")) fail(input, "not a model folder: config.json is missing");
    HfConverter converter(input, options, pool);
    report = converter.run(output);
  } else {
    report = requantize_gguf(input, output, options, pool);
  }
  report.output_bytes = fs::file_size(output);
  return report;
}

}  // namespace billion
