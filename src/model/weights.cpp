// Binding weights by name. One table of tensor names per (family, file format); everything
// after the lookup — shape checks, conversions, re-quantization — is shared.
#include "model/weights.h"

#include <fmt/format.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <functional>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "kernels/interleave.h"
#include "kernels/quant.h"

namespace billion {
namespace {

// A tensor as found in a file: shape in PyTorch order (outermost first).
struct RawTensor {
  GgmlType type;
  const uint8_t* data;
  std::vector<int64_t> shape;
  std::string name;
};

using Finder = std::function<std::optional<RawTensor>(const std::string&)>;

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

// Gives the pages of [p, p + n) that lie wholly inside it back to the kernel. For a read-only
// private file mapping that only drops them from our resident set: touching them again reads
// the file. Used after a tensor has been copied into a new layout or re-quantized, so that the
// copy does not double the resident size while the model loads.
void release_mapped_pages(const void* p, size_t n) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

class Binder {
 public:
  // file_backed: tensor data lies in a read-only file mapping, whose pages may be given back
  // once a tensor has been copied (never true for bytes in ordinary memory, which would be lost).
  Binder(Finder find, const ArchitectureSpec& spec, LoadQuantization quantization, const kernels::KernelTable* interleave,
         bool copy_matrices, bool file_backed, std::string source, ModelWeights& out)
      : find_(std::move(find)), spec_(spec), quantization_(quantization), interleave_(interleave),
        copy_matrices_(copy_matrices), file_backed_(file_backed), source_(std::move(source)), out_(out) {}

  std::optional<RawTensor> optional(const std::string& name) { return find_(name); }

  RawTensor require(const std::string& name, const std::vector<int64_t>& shape) {
    auto t = find_(name);
    if (!t) fail(source_, "missing tensor {}", name);
    check_shape(*t, shape);
    return *t;
  }

  void check_shape(const RawTensor& t, const std::vector<int64_t>& shape) {
    // A vector may be stored as [n] or [1, n]; compare element counts and the last dimension.
    bool ok = t.shape == shape;
    if (!ok && shape.size() == 1 && t.shape.size() == 2 && t.shape[0] == 1 && t.shape[1] == shape[0]) ok = true;
    if (!ok) fail(source_, "tensor {} has shape {} but the architecture needs {}", t.name, shape_string(t.shape), shape_string(shape));
  }

  std::vector<float> vector(const RawTensor& t) {
    int64_t n = 1;
    for (auto d : t.shape) n *= d;
    if (!kernels::weight_type_supported(t.type)) fail(source_, "tensor {} has unsupported type {}", t.name, ggml_type_name(t.type));
    std::vector<float> out(n);
    kernels::dequantize_row(t.type, t.data, out.data(), n);
    return out;
  }

  std::vector<float> vector(const std::string& name, int64_t n) { return vector(require(name, {n})); }

  std::vector<float> optional_vector(const std::string& name, int64_t n) {
    auto t = optional(name);
    if (!t) return {};
    check_shape(*t, {n});
    return vector(*t);
  }

  // The token embedding (is_embedding) is never re-quantized: --quantize applies to the
  // matrices the matmuls read, and a tied output matrix keeps what the file stores. tied: the
  // embedding is also the output matrix.
  kernels::WeightView matrix(const RawTensor& t, bool is_embedding = false, bool tied = false) {
    const bool allow_quantize = !is_embedding;
    if (t.shape.size() != 2) fail(source_, "tensor {} should be a matrix, has shape {}", t.name, shape_string(t.shape));
    if (!kernels::weight_type_supported(t.type))
      fail(source_, "tensor {} has type {}, which the engine cannot run yet", t.name, ggml_type_name(t.type));
    int64_t rows = t.shape[0], cols = t.shape[1];
    if (cols % kernels::type_block_elements(t.type) != 0) fail(source_, "tensor {}: row length {} does not fit its block size", t.name, cols);
    kernels::WeightView view{t.type, t.data, rows, cols, kernels::type_row_bytes(t.type, cols)};
    bool is_float = t.type == GgmlType::F32 || t.type == GgmlType::F16 || t.type == GgmlType::BF16;
    GgmlType target = quantized_type(quantization_);
    bool convert = quantization_ == LoadQuantization::F32 ? t.type != GgmlType::F32
                                                         : allow_quantize && is_float && quantization_ != LoadQuantization::None && cols % 32 == 0;
    if (convert) {
      auto buffer = std::make_unique<HugePageBuffer>(rows * kernels::type_row_bytes(target, cols));
      std::vector<float> row(cols);
      for (int64_t r = 0; r < rows; ++r) {
        kernels::dequantize_row(t.type, view.row(r), row.data(), cols);
        kernels::quantize_row(target, row.data(), buffer->data() + r * kernels::type_row_bytes(target, cols), cols);
      }
      // The file's copy is not read again: without this an F16 file loaded with --quantize int8
      // kept both resident (TinyLlama: 3.2 GB peak against 1.2 GB for the Q8_0 file).
      if (file_backed_) release_mapped_pages(t.data, rows * view.row_bytes);
      view = {target, buffer->data(), rows, cols, kernels::type_row_bytes(target, cols)};
      if (interleave_ && kernels::wants_interleaved(*interleave_, view.type, rows, cols))
        return interleaved(view, std::move(buffer));
      out_.owned_bytes += buffer->size();
      out_.owned.push_back(std::move(buffer));
      return view;
    }
    // A token embedding that is only looked up stays as the file has it. A tied one is the
    // output matrix too, read for every token: re-laid like any matrix (its rows are read back
    // with dequantize_weight_row), except Q8_0, which takes the layout whose kernel keeps
    // ggml's vec_dot order, so the logits stay bit-identical to llama.cpp's, which does not
    // repack Q8_0 (SmolLM2, Llama-3.2 Q8_0; in the file's rows its tiles were 3-4x slower per
    // byte than the interleaved ones, bench_kernels). K-quants give the same bits either way.
    const bool matmul_reads_it = !is_embedding || tied;
    if (interleave_ && matmul_reads_it && kernels::wants_interleaved(*interleave_, view.type, rows, cols) &&
        !(is_embedding && view.type == GgmlType::Q8_0)) {
      kernels::WeightView result = interleaved(view, nullptr);
      if (file_backed_) release_mapped_pages(t.data, rows * view.row_bytes);
      return result;
    }
    // Q4_1 (SmolLM2's matrices) likewise keeps ggml's order, in the same layout.
    const bool ggml_order =
        interleave_ && ((tied && view.type == GgmlType::Q8_0 && interleave_->interleave_q8_0_ggml_at_load) ||
                        (matmul_reads_it && view.type == GgmlType::Q4_1 && interleave_->interleave_q4_1_ggml_at_load));
    if (ggml_order && kernels::can_interleave(view.type, rows, cols)) {
      kernels::WeightView result = interleaved(view, nullptr, kernels::WeightLayout::Interleaved16Ggml);
      if (file_backed_) release_mapped_pages(t.data, rows * view.row_bytes);
      return result;
    }
    // Any other matrix a matmul reads is copied as it is (see weights.h); an embedding that is
    // only looked up stays in the file.
    if (interleave_ && copy_matrices_ && file_backed_ && matmul_reads_it) {
      const size_t bytes = rows * view.row_bytes;
      auto buffer = std::make_unique<HugePageBuffer>(bytes);
      std::memcpy(buffer->data(), view.data, bytes);
      release_mapped_pages(t.data, bytes);
      view.data = buffer->data();
      out_.owned_bytes += bytes;
      out_.owned.push_back(std::move(buffer));
      return view;
    }
    out_.mapped_bytes += rows * view.row_bytes;
    return view;
  }

  // A Q4_0/Q8_0/Q4_K/Q6_K (or F16/BF16) matrix re-laid for the kernels (kernels/interleave.h) into an owned,
  // huge-page aligned buffer; `source_buffer` (its data, if owned) is freed once copied.
  kernels::WeightView interleaved(const kernels::WeightView& view, std::unique_ptr<HugePageBuffer> source_buffer,
                                  kernels::WeightLayout layout = kernels::WeightLayout::Interleaved16) {
    const size_t bytes = view.rows * view.row_bytes;
    auto buffer = std::make_unique<HugePageBuffer>(bytes);
    uint8_t* data = buffer->data();
    kernels::interleave_rows(view.type, static_cast<const uint8_t*>(view.data), view.row_bytes, view.rows, view.cols, data);
    source_buffer.reset();
    kernels::WeightView result = view;
    result.data = data;
    result.layout = layout;
    out_.owned_bytes += bytes;
    out_.owned.push_back(std::move(buffer));
    return result;
  }

  Linear linear(const std::string& weight_name, const std::string& bias_name, int64_t out, int64_t in, bool bias_required) {
    Linear l;
    l.weight = matrix(require(weight_name, {out, in}));
    if (bias_required) l.bias = vector(bias_name, out);
    else l.bias = optional_vector(bias_name, out);
    return l;
  }

  const std::string& source() const { return source_; }

 private:
  Finder find_;
  const ArchitectureSpec& spec_;
  LoadQuantization quantization_;
  const kernels::KernelTable* interleave_;
  bool copy_matrices_;
  bool file_backed_;
  std::string source_;
  ModelWeights& out_;
};

}  // namespace

LoadQuantization parse_load_quantization(const std::string& text) {
  if (text.empty() || text == "none") return LoadQuantization::None;
  if (text == "int8") return LoadQuantization::Int8;
  if (text == "int4") return LoadQuantization::Int4;
  if (text == "f32") return LoadQuantization::F32;
  throw Error(fmt::format("--quantize: unknown value {} (int8 or int4)", text));
}

GgmlType quantized_type(LoadQuantization q) {
  if (q == LoadQuantization::F32) return GgmlType::F32;
  return q == LoadQuantization::Int4 ? GgmlType::Q4_0 : GgmlType::Q8_0;
}

ModelWeights bind_gguf_weights(const GgufFile& gguf, const ArchitectureSpec& spec, LoadQuantization quantization,
                               const kernels::KernelTable* interleave, bool copy_matrices) {
  ModelWeights w;
  Finder find = [&gguf](const std::string& name) -> std::optional<RawTensor> {
    const auto* t = gguf.find_tensor(name);
    if (!t) return std::nullopt;
    RawTensor r{t->type, t->data, {}, name};
    for (auto it = t->dims.rbegin(); it != t->dims.rend(); ++it) r.shape.push_back(static_cast<int64_t>(*it));
    return r;
  };
  Binder b(find, spec, quantization, interleave, copy_matrices, gguf.file_backed(), gguf.path(), w);
  const int64_t h = spec.hidden, hd = spec.head_dim, q_dim = int64_t(spec.n_heads) * hd, kv_dim = int64_t(spec.n_kv_heads) * hd;
  const bool layer_norm = spec.norm == NormKind::LayerNorm;
  const auto output = b.optional("output.weight");
  w.token_embedding = b.matrix(b.require("token_embd.weight", {spec.vocab_size, h}), /*is_embedding=*/true, /*tied=*/!output);
  w.final_norm_w = b.vector("output_norm.weight", h);
  if (layer_norm) w.final_norm_b = b.vector("output_norm.bias", h);
  if (const auto& out = output) {
    b.check_shape(*out, {spec.vocab_size, h});
    w.output.weight = b.matrix(*out);
  } else {
    w.output.weight = w.token_embedding;
  }
  if (auto freqs = b.optional("rope_freqs.weight")) {
    b.check_shape(*freqs, {spec.rotary_dims / 2});
    w.rope_freq_divisors = b.vector(*freqs);
  }
  for (int i = 0; i < spec.n_layers; ++i) {
    LayerWeights L;
    auto n = [i](const char* suffix) { return fmt::format("blk.{}.{}", i, suffix); };
    L.attn_norm_w = b.vector(n("attn_norm.weight"), h);
    if (layer_norm) L.attn_norm_b = b.vector(n("attn_norm.bias"), h);
    if (!(spec.family == "stablelm" && spec.parallel_residual)) {
      L.ffn_norm_w = b.vector(n("ffn_norm.weight"), h);
      if (layer_norm) L.ffn_norm_b = b.vector(n("ffn_norm.bias"), h);
    }
    if (b.optional(n("attn_qkv.weight"))) {
      L.fused = FusedQkvLayout::Blocks;
      L.qkv = b.linear(n("attn_qkv.weight"), n("attn_qkv.bias"), q_dim + 2 * kv_dim, h, spec.qkv_bias);
    } else {
      L.q = b.linear(n("attn_q.weight"), n("attn_q.bias"), q_dim, h, spec.qkv_bias);
      L.k = b.linear(n("attn_k.weight"), n("attn_k.bias"), kv_dim, h, spec.qkv_bias);
      L.v = b.linear(n("attn_v.weight"), n("attn_v.bias"), kv_dim, h, spec.qkv_bias);
    }
    L.o = b.linear(n("attn_output.weight"), n("attn_output.bias"), h, q_dim, spec.out_bias);
    if (spec.qk_layernorm) {
      L.q_norm_w = b.vector(b.require(n("attn_q_norm.weight"), {spec.n_heads, hd}));
      L.k_norm_w = b.vector(b.require(n("attn_k_norm.weight"), {spec.n_kv_heads, hd}));
    }
    if (spec.mlp == MlpKind::SwiGLU) L.gate = b.linear(n("ffn_gate.weight"), n("ffn_gate.bias"), spec.intermediate, h, spec.mlp_bias);
    L.up = b.linear(n("ffn_up.weight"), n("ffn_up.bias"), spec.intermediate, h, spec.mlp_bias);
    L.down = b.linear(n("ffn_down.weight"), n("ffn_down.bias"), h, spec.intermediate, spec.mlp_bias);
    w.layers.push_back(std::move(L));
  }
  return w;
}

ModelWeights bind_safetensors_weights(const SafetensorsCheckpoint& checkpoint, const ArchitectureSpec& spec,
                                      LoadQuantization quantization, const std::string& source,
                                      const kernels::KernelTable* interleave, bool copy_matrices) {
  ModelWeights w;
  Finder find = [&checkpoint](const std::string& name) -> std::optional<RawTensor> {
    const auto* t = checkpoint.find(name);
    if (!t) return std::nullopt;
    GgmlType type = t->dtype == SafetensorsDtype::F32 ? GgmlType::F32 : t->dtype == SafetensorsDtype::F16 ? GgmlType::F16 : GgmlType::BF16;
    RawTensor r{type, t->bytes.data(), {}, name};
    for (auto d : t->shape) r.shape.push_back(static_cast<int64_t>(d));
    return r;
  };
  Binder b(find, spec, quantization, interleave, copy_matrices, /*file_backed=*/true, source, w);  // checkpoints map their files
  const int64_t h = spec.hidden, hd = spec.head_dim, q_dim = int64_t(spec.n_heads) * hd, kv_dim = int64_t(spec.n_kv_heads) * hd;
  const bool layer_norm = spec.norm == NormKind::LayerNorm;
  const bool neox = spec.family == "gptneox";
  const std::string root = neox ? "gpt_neox." : "model.";
  w.token_embedding = b.matrix(b.require(root + (neox ? "embed_in.weight" : "embed_tokens.weight"), {spec.vocab_size, h}), /*is_embedding=*/true);
  std::string final_norm = root + (neox ? "final_layer_norm" : "norm");
  w.final_norm_w = b.vector(final_norm + ".weight", h);
  if (layer_norm) w.final_norm_b = b.vector(final_norm + ".bias", h);
  std::string head = neox ? "embed_out.weight" : "lm_head.weight";
  if (auto out = b.optional(head); out && !spec.tied_embeddings) {
    b.check_shape(*out, {spec.vocab_size, h});
    w.output.weight = b.matrix(*out);
  } else if (!spec.tied_embeddings) {
    fail(source, "missing tensor {} (the config says the embeddings are not tied)", head);
  } else {
    w.output.weight = w.token_embedding;
  }
  for (int i = 0; i < spec.n_layers; ++i) {
    LayerWeights L;
    std::string p = fmt::format("{}layers.{}.", root, i);
    L.attn_norm_w = b.vector(p + "input_layernorm.weight", h);
    if (layer_norm) L.attn_norm_b = b.vector(p + "input_layernorm.bias", h);
    if (!(spec.family == "stablelm" && spec.parallel_residual)) {
      L.ffn_norm_w = b.vector(p + "post_attention_layernorm.weight", h);
      if (layer_norm) L.ffn_norm_b = b.vector(p + "post_attention_layernorm.bias", h);
    }
    if (neox) {
      L.fused = FusedQkvLayout::PerHead;
      L.qkv = b.linear(p + "attention.query_key_value.weight", p + "attention.query_key_value.bias", 3 * q_dim, h, spec.qkv_bias);
      L.o = b.linear(p + "attention.dense.weight", p + "attention.dense.bias", h, q_dim, spec.out_bias);
      L.up = b.linear(p + "mlp.dense_h_to_4h.weight", p + "mlp.dense_h_to_4h.bias", spec.intermediate, h, true);
      L.down = b.linear(p + "mlp.dense_4h_to_h.weight", p + "mlp.dense_4h_to_h.bias", h, spec.intermediate, true);
    } else {
      L.q = b.linear(p + "self_attn.q_proj.weight", p + "self_attn.q_proj.bias", q_dim, h, spec.qkv_bias);
      L.k = b.linear(p + "self_attn.k_proj.weight", p + "self_attn.k_proj.bias", kv_dim, h, spec.qkv_bias);
      L.v = b.linear(p + "self_attn.v_proj.weight", p + "self_attn.v_proj.bias", kv_dim, h, spec.qkv_bias);
      L.o = b.linear(p + "self_attn.o_proj.weight", p + "self_attn.o_proj.bias", h, q_dim, spec.out_bias);
      if (spec.qk_layernorm) {
        for (int head = 0; head < spec.n_heads; ++head) {
          auto v = b.vector(fmt::format("{}self_attn.q_layernorm.norms.{}.weight", p, head), hd);
          L.q_norm_w.insert(L.q_norm_w.end(), v.begin(), v.end());
        }
        for (int head = 0; head < spec.n_kv_heads; ++head) {
          auto v = b.vector(fmt::format("{}self_attn.k_layernorm.norms.{}.weight", p, head), hd);
          L.k_norm_w.insert(L.k_norm_w.end(), v.begin(), v.end());
        }
      }
      L.gate = b.linear(p + "mlp.gate_proj.weight", p + "mlp.gate_proj.bias", spec.intermediate, h, spec.mlp_bias);
      L.up = b.linear(p + "mlp.up_proj.weight", p + "mlp.up_proj.bias", spec.intermediate, h, spec.mlp_bias);
      L.down = b.linear(p + "mlp.down_proj.weight", p + "mlp.down_proj.bias", h, spec.intermediate, spec.mlp_bias);
    }
    w.layers.push_back(std::move(L));
  }
  return w;
}

}  // namespace billion
