// The CUDA backend (contract in cuda_backend.h): weights uploaded once, a forward pass that
// mirrors Decoder::forward_batch step for step, with cuBLAS for the matrix products and
// cuda_kernels.cu for the rest, and KV caches in device memory.
#include "gpu/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "gpu/cuda_kernels.cuh"
#include "kernels/kernels.h"
#include "kernels/quant.h"

namespace billion::gpu {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(fmt::format("CUDA: {} failed: {}", what, cudaGetErrorString(status)));
}

void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) throw Error(fmt::format("cuBLAS: {} failed: {}", what, cublasGetStatusString(status)));
}

// Bytes this backend holds on the device, now and at its peak (weights, caches, scratch).
struct MemoryCounter {
  std::atomic<uint64_t> now{0}, peak{0};
  void add(uint64_t bytes) {
    uint64_t v = now += bytes;
    uint64_t p = peak.load();
    while (v > p && !peak.compare_exchange_weak(p, v)) {
    }
  }
  void sub(uint64_t bytes) { now -= bytes; }
};

// One cudaMalloc, freed with its owner; counted.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(uint64_t bytes, std::shared_ptr<MemoryCounter> counter, const char* what) : counter_(std::move(counter)) {
    if (bytes == 0) return;
    cudaError_t status = cudaMalloc(&ptr_, bytes);
    if (status != cudaSuccess) {
      size_t free_bytes = 0, total = 0;
      cudaMemGetInfo(&free_bytes, &total);
      throw Error(fmt::format("CUDA: cannot allocate {:.1f} MB for {} ({}; {:.1f} of {:.1f} GB free on the device)", bytes / 1e6, what,
                              cudaGetErrorString(status), free_bytes / 1e9, total / 1e9));
    }
    bytes_ = bytes;
    counter_->add(bytes);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    DeviceBuffer tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_) {
      cudaFree(ptr_);
      counter_->sub(bytes_);
    }
  }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  uint64_t bytes() const { return bytes_; }

 private:
  void swap(DeviceBuffer& o) {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    std::swap(counter_, o.counter_);
  }
  void* ptr_ = nullptr;
  uint64_t bytes_ = 0;
  std::shared_ptr<MemoryCounter> counter_;
};

DeviceBuffer upload_floats(const std::vector<float>& v, const std::shared_ptr<MemoryCounter>& counter, const char* what) {
  DeviceBuffer b(v.size() * sizeof(float), counter, what);
  if (!v.empty()) check(cudaMemcpy(b.as<float>(), v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice), "upload");
  return b;
}

// Keys and values of one cache: [n_layers, capacity, kv_dim] each, float or half.
class CudaKV final : public KVDeviceStorage {
 public:
  CudaKV(int n_layers, int capacity, int kv_dim, bool half, std::shared_ptr<MemoryCounter> counter)
      : n_layers_(n_layers), capacity_(capacity), kv_dim_(kv_dim), half_(half), counter_(counter) {
    const uint64_t bytes = uint64_t(n_layers) * capacity * kv_dim * element_bytes();
    keys_ = DeviceBuffer(bytes, counter, "the KV cache keys");
    values_ = DeviceBuffer(bytes, counter, "the KV cache values");
  }
  void copy_prefix(const KVDeviceStorage& from_base, int n) override {
    const auto* from = dynamic_cast<const CudaKV*>(&from_base);
    if (!from || from->kv_dim_ != kv_dim_ || from->half_ != half_ || from->n_layers_ != n_layers_)
      throw Error("KV cache: cannot copy a prefix between device caches of different shapes");
    const size_t row = size_t(kv_dim_) * element_bytes();
    for (int layer = 0; layer < n_layers_; ++layer) {
      check(cudaMemcpy(layer_keys(layer), from->layer_keys(layer), row * n, cudaMemcpyDeviceToDevice), "KV copy");
      check(cudaMemcpy(layer_values(layer), from->layer_values(layer), row * n, cudaMemcpyDeviceToDevice), "KV copy");
    }
  }
  std::unique_ptr<KVDeviceStorage> clone() const override {
    auto copy = std::make_unique<CudaKV>(n_layers_, capacity_, kv_dim_, half_, counter_);
    check(cudaMemcpy(copy->keys_.as<void>(), keys_.as<void>(), keys_.bytes(), cudaMemcpyDeviceToDevice), "KV clone");
    check(cudaMemcpy(copy->values_.as<void>(), values_.as<void>(), values_.bytes(), cudaMemcpyDeviceToDevice), "KV clone");
    return copy;
  }
  uint64_t bytes() const override { return keys_.bytes() + values_.bytes(); }
  bool half() const { return half_; }
  void* layer_keys(int layer) const { return keys_.as<uint8_t>() + layer_offset(layer); }
  void* layer_values(int layer) const { return values_.as<uint8_t>() + layer_offset(layer); }

 private:
  size_t element_bytes() const { return half_ ? 2 : 4; }
  size_t layer_offset(int layer) const { return size_t(layer) * capacity_ * kv_dim_ * element_bytes(); }
  int n_layers_, capacity_, kv_dim_;
  bool half_;
  std::shared_ptr<MemoryCounter> counter_;
  DeviceBuffer keys_, values_;
};

struct DeviceLinear {
  DeviceBuffer weight;  // [rows, cols], half or float
  DeviceBuffer bias;    // [rows] or empty
  int64_t rows = 0, cols = 0;
  bool empty() const { return rows == 0; }
};

struct DeviceLayer {
  DeviceBuffer attn_norm_w, attn_norm_b, ffn_norm_w, ffn_norm_b, q_norm_w, k_norm_w;
  DeviceLinear qkv, q, k, v, o, gate, up, down;
};

class CudaBackend final : public DeviceBackend {
 public:
  CudaBackend(const Decoder& decoder, const CudaOptions& options);
  ~CudaBackend() override;
  std::string device_name() const override { return name_; }
  std::unique_ptr<KVDeviceStorage> make_kv_storage(int capacity, KVType type) override {
    return std::make_unique<CudaKV>(spec_.n_layers, capacity, spec_.n_kv_heads * spec_.head_dim, type == KVType::F16, counter_);
  }
  void forward_batch(std::span<const int32_t> tokens, KVCache& cache, float* logits, LogitsFor which) override;
  uint64_t peak_memory_bytes() const override { return counter_->peak; }

 private:
  DeviceLinear upload_linear(const Linear& l, const std::string& what);
  // y [n, l.rows] = x [n, l.cols] · Wᵀ (+ bias)
  void project(const DeviceLinear& l, const float* x, float* y, int64_t n);
  void norm(const DeviceBuffer& w, const DeviceBuffer& b, const float* in, float* out, int64_t rows);
  float* scratch(DeviceBuffer& b, uint64_t floats, const char* what);

  ArchitectureSpec spec_;
  const ModelWeights& host_;  // the decoder's weights (the token embedding is gathered on the host)
  bool half_weights_;
  std::string name_;
  std::shared_ptr<MemoryCounter> counter_ = std::make_shared<MemoryCounter>();
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::vector<DeviceLayer> layers_;
  DeviceBuffer final_norm_w_, final_norm_b_, inv_freq_;
  DeviceLinear output_;
  // Scratch, grown on demand; [n tokens, width].
  DeviceBuffer x_, h_, q_, k_, v_, qkv_, att_, o_, up_, gate_, mlp_, half_, scores_, logits_;
  std::vector<float> host_x_;
};

CudaBackend::CudaBackend(const Decoder& decoder, const CudaOptions& options)
    : spec_(decoder.spec()), host_(decoder.weights()), half_weights_(options.weights == WeightPrecision::F16) {
  int count = 0;
  check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (options.device < 0 || options.device >= count)
    throw Error(fmt::format("CUDA: device {} requested, {} visible", options.device, count));
  check(cudaSetDevice(options.device), "cudaSetDevice");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, options.device), "cudaGetDeviceProperties");
  name_ = prop.name;
  if (spec_.head_dim > 256) throw Error(fmt::format("CUDA: head_dim {} is above the attention kernel's 256", spec_.head_dim));
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cublasCreate(&cublas_), "cublasCreate");
  check(cublasSetStream(cublas_, stream_), "cublasSetStream");
  // F32 mode is the fidelity mode: no TF32 or other reduced-precision shortcuts.
  if (!half_weights_) check(cublasSetMathMode(cublas_, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");

  const ModelWeights& w = decoder.weights();
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const LayerWeights& L = w.layers[i];
    const std::string where = fmt::format("layer {} ", i);
    DeviceLayer d;
    d.attn_norm_w = upload_floats(L.attn_norm_w, counter_, "norm weights");
    d.attn_norm_b = upload_floats(L.attn_norm_b, counter_, "norm weights");
    d.ffn_norm_w = upload_floats(L.ffn_norm_w, counter_, "norm weights");
    d.ffn_norm_b = upload_floats(L.ffn_norm_b, counter_, "norm weights");
    d.q_norm_w = upload_floats(L.q_norm_w, counter_, "norm weights");
    d.k_norm_w = upload_floats(L.k_norm_w, counter_, "norm weights");
    if (L.fused == FusedQkvLayout::None) {
      d.q = upload_linear(L.q, where + "q");
      d.k = upload_linear(L.k, where + "k");
      d.v = upload_linear(L.v, where + "v");
    } else {
      d.qkv = upload_linear(L.qkv, where + "qkv");
    }
    d.o = upload_linear(L.o, where + "o");
    if (spec_.mlp == MlpKind::SwiGLU) d.gate = upload_linear(L.gate, where + "gate");
    d.up = upload_linear(L.up, where + "up");
    d.down = upload_linear(L.down, where + "down");
    layers_.push_back(std::move(d));
  }
  final_norm_w_ = upload_floats(w.final_norm_w, counter_, "norm weights");
  final_norm_b_ = upload_floats(w.final_norm_b, counter_, "norm weights");
  output_ = upload_linear(w.output, "output");
  inv_freq_ = upload_floats(decoder.rope_inverse_frequencies(), counter_, "rotary frequencies");
}

CudaBackend::~CudaBackend() {
  if (cublas_) cublasDestroy(cublas_);
  if (stream_) cudaStreamDestroy(stream_);
}

DeviceLinear CudaBackend::upload_linear(const Linear& l, const std::string& what) {
  if (l.lora) throw Error("--device cuda: " + what + " carries a LoRA adapter; adapters run on the CPU (merge it first: billion merge)");
  const kernels::WeightView& w = l.weight;
  DeviceLinear d;
  d.rows = w.rows;
  d.cols = w.cols;
  const size_t element = half_weights_ ? 2 : 4;
  d.weight = DeviceBuffer(uint64_t(w.rows) * w.cols * element, counter_, "weights");
  // Expand a block of rows at a time to the device precision in host memory, then copy.
  const int64_t block_rows = std::max<int64_t>(1, (int64_t(8) << 20) / (w.cols * 4));
  std::vector<float> rows_f32(size_t(std::min(block_rows, w.rows)) * w.cols);
  std::vector<uint16_t> rows_f16(half_weights_ ? rows_f32.size() : 0);
  for (int64_t r0 = 0; r0 < w.rows; r0 += block_rows) {
    const int64_t nr = std::min(block_rows, w.rows - r0);
    for (int64_t r = 0; r < nr; ++r) kernels::dequantize_weight_row(w, r0 + r, rows_f32.data() + r * w.cols);
    const void* src = rows_f32.data();
    if (half_weights_) {
      for (int64_t i = 0; i < nr * w.cols; ++i)
        if (std::fabs(rows_f32[i]) > 65504.0f)
          throw Error(fmt::format("--device cuda: {} weight {} is outside the F16 range; use --gpu-weights f32", what, rows_f32[i]));
      kernels::active_kernels().f32_to_f16(rows_f32.data(), rows_f16.data(), nr * w.cols);  // the KV cache's conversion
      src = rows_f16.data();
    }
    check(cudaMemcpy(d.weight.as<uint8_t>() + size_t(r0) * w.cols * element, src, size_t(nr) * w.cols * element, cudaMemcpyHostToDevice),
          "weight upload");
  }
  d.bias = upload_floats(l.bias, counter_, "biases");
  return d;
}

float* CudaBackend::scratch(DeviceBuffer& b, uint64_t floats, const char* what) {
  if (b.bytes() < floats * sizeof(float)) {
    // Grow by half again at least: the attention scores grow by a row every decode step, and a
    // cudaFree/cudaMalloc pair per step (each synchronising the device) would cost more than it.
    const uint64_t bytes = std::max<uint64_t>(floats * sizeof(float), b.bytes() + b.bytes() / 2);
    b = DeviceBuffer();  // free first: the peak should not hold both
    b = DeviceBuffer(bytes, counter_, what);
  }
  return b.as<float>();
}

void CudaBackend::project(const DeviceLinear& l, const float* x, float* y, int64_t n) {
  const float* bias = l.bias.bytes() ? l.bias.as<float>() : nullptr;
  if (n == 1 && l.cols % 8 == 0) {  // one token: our GEMV (no conversion, bias fused)
    if (half_weights_) launch_gemv(l.weight.as<__half>(), x, bias, y, l.rows, static_cast<int>(l.cols), stream_);
    else launch_gemv(l.weight.as<float>(), x, bias, y, l.rows, static_cast<int>(l.cols), stream_);
    return;
  }
  const float one = 1, zero = 0;
  const int m = static_cast<int>(l.rows), k = static_cast<int>(l.cols), nn = static_cast<int>(n);
  // Row-major y [n, rows] is column-major [rows, n] = Wᵀ(col-major [cols, rows]) · x(col-major [cols, n]).
  if (half_weights_) {
    __half* xh = reinterpret_cast<__half*>(scratch(half_, (uint64_t(n) * l.cols + 1) / 2, "activations (f16)"));
    launch_to_half(x, xh, n * l.cols, stream_);
    check(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, m, nn, k, &one, l.weight.as<__half>(), CUDA_R_16F, k, xh, CUDA_R_16F, k, &zero,
                       y, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx");
  } else {
    check(cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, m, nn, k, &one, l.weight.as<float>(), k, x, k, &zero, y, m), "cublasSgemm");
  }
  if (bias) launch_add_bias(y, bias, n, m, stream_);
}

void CudaBackend::norm(const DeviceBuffer& w, const DeviceBuffer& b, const float* in, float* out, int64_t rows) {
  launch_norm(in, w.as<float>(), b.bytes() ? b.as<float>() : nullptr, out, rows, spec_.hidden, 1, spec_.norm_eps,
              spec_.norm == NormKind::LayerNorm, stream_);
}

void CudaBackend::forward_batch(std::span<const int32_t> tokens, KVCache& cache, float* logits, LogitsFor which) {
  auto* kv = dynamic_cast<CudaKV*>(cache.device_storage());
  if (!kv) throw Error("forward: the KV cache was not made by the CUDA backend");
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int start = cache.size();
  const int64_t H = spec_.hidden, hd = spec_.head_dim, q_dim = int64_t(spec_.n_heads) * hd, kv_dim = int64_t(spec_.n_kv_heads) * hd;
  const int64_t F = spec_.intermediate;
  float* x = scratch(x_, n * H, "activations");
  float* h = scratch(h_, n * H, "activations");
  float* q = scratch(q_, n * q_dim, "activations");
  float* k = scratch(k_, n * kv_dim, "activations");
  float* v = scratch(v_, n * kv_dim, "activations");
  float* att = scratch(att_, n * q_dim, "activations");
  float* o = scratch(o_, n * H, "activations");
  float* up = scratch(up_, n * F, "activations");
  float* gate = spec_.mlp == MlpKind::SwiGLU ? scratch(gate_, n * F, "activations") : nullptr;
  float* mlp = scratch(mlp_, n * H, "activations");
  float* scores = scratch(scores_, uint64_t(n) * spec_.n_heads * (start + n), "attention scores");

  // Token embeddings: gathered on the host from the (possibly quantized) table, then copied.
  host_x_.resize(size_t(n * H));
  const auto& e = host_.token_embedding;
  for (int64_t t = 0; t < n; ++t) kernels::dequantize_weight_row(e, tokens[t], host_x_.data() + t * H);
  check(cudaMemcpyAsync(x, host_x_.data(), host_x_.size() * sizeof(float), cudaMemcpyHostToDevice, stream_), "embedding upload");

  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool half_split = spec_.rope_style == RopeStyle::HalfSplit;
  for (int layer = 0; layer < spec_.n_layers; ++layer) {
    const DeviceLayer& L = layers_[layer];
    norm(L.attn_norm_w, L.attn_norm_b, x, h, n);
    if (L.qkv.empty()) {
      project(L.q, h, q, n);
      project(L.k, h, k, n);
      project(L.v, h, v, n);
    } else {
      float* qkv = scratch(qkv_, n * (q_dim + 2 * kv_dim), "activations");
      project(L.qkv, h, qkv, n);
      launch_split_qkv(qkv, q, k, v, n, static_cast<int>(q_dim), static_cast<int>(kv_dim), static_cast<int>(hd),
                       host_.layers[layer].fused == FusedQkvLayout::PerHead, stream_);
    }
    if (L.q_norm_w.bytes()) {  // StableLM qk_layernorm: LayerNorm per head, no bias
      launch_norm(q, L.q_norm_w.as<float>(), nullptr, q, n * spec_.n_heads, static_cast<int>(hd), spec_.n_heads, spec_.norm_eps, true, stream_);
      launch_norm(k, L.k_norm_w.as<float>(), nullptr, k, n * spec_.n_kv_heads, static_cast<int>(hd), spec_.n_kv_heads, spec_.norm_eps, true,
                  stream_);
    }
    launch_rope(q, n, spec_.n_heads, static_cast<int>(hd), spec_.rotary_dims, inv_freq_.as<float>(), start, half_split, stream_);
    launch_rope(k, n, spec_.n_kv_heads, static_cast<int>(hd), spec_.rotary_dims, inv_freq_.as<float>(), start, half_split, stream_);
    if (kv->half()) {
      auto* kc = static_cast<__half*>(kv->layer_keys(layer));
      auto* vc = static_cast<__half*>(kv->layer_values(layer));
      launch_store_kv(k, v, kc, vc, n, static_cast<int>(kv_dim), start, stream_);
      launch_attention<__half>(q, kc, vc, att, scores, n, start, spec_.n_heads, spec_.n_kv_heads, static_cast<int>(hd), scale, stream_);
    } else {
      auto* kc = static_cast<float*>(kv->layer_keys(layer));
      auto* vc = static_cast<float*>(kv->layer_values(layer));
      launch_store_kv(k, v, kc, vc, n, static_cast<int>(kv_dim), start, stream_);
      launch_attention<float>(q, kc, vc, att, scores, n, start, spec_.n_heads, spec_.n_kv_heads, static_cast<int>(hd), scale, stream_);
    }
    project(L.o, att, o, n);

    // The MLP's input, as in Decoder::forward_batch: sequential blocks norm the updated stream,
    // parallel ones the block input (StableLM's parallel variant reuses the attention norm in h).
    if (!spec_.parallel_residual) {
      launch_add(x, o, x, n * H, stream_);
      norm(L.ffn_norm_w, L.ffn_norm_b, x, h, n);
    } else if (L.ffn_norm_w.bytes()) {
      norm(L.ffn_norm_w, L.ffn_norm_b, x, h, n);
    }
    project(L.up, h, up, n);
    if (spec_.mlp == MlpKind::SwiGLU) {
      project(L.gate, h, gate, n);
      launch_silu_mul(gate, up, up, n * F, stream_);
    } else {
      launch_gelu(up, n * F, stream_);
    }
    project(L.down, up, mlp, n);
    if (spec_.parallel_residual) launch_add(mlp, o, mlp, n * H, stream_);  // mlp + attn + x, in HF's order
    launch_add(x, mlp, x, n * H, stream_);
  }
  cache.set_size(start + static_cast<int>(n));

  if (which != LogitsFor::None) {
    const int64_t first = which == LogitsFor::All ? 0 : n - 1, n_out = n - first;
    norm(final_norm_w_, final_norm_b_, x + first * H, h, n_out);
    float* out = scratch(logits_, uint64_t(n_out) * spec_.vocab_size, "logits");
    project(output_, h, out, n_out);
    check(cudaMemcpyAsync(logits, out, size_t(n_out) * spec_.vocab_size * sizeof(float), cudaMemcpyDeviceToHost, stream_), "logits download");
  }
  check(cudaGetLastError(), "a kernel launch");
  check(cudaStreamSynchronize(stream_), "the forward pass");
}

}  // namespace

bool cuda_available(std::string* why) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    if (why) *why = status != cudaSuccess ? fmt::format("no CUDA device is usable: {}", cudaGetErrorString(status)) : "no CUDA device is visible";
    return false;
  }
  return true;
}

std::shared_ptr<DeviceBackend> attach_cuda(Decoder& decoder, const CudaOptions& options) {
  std::string why;
  if (!cuda_available(&why)) throw Error("--device cuda: " + why);
  auto backend = std::make_shared<CudaBackend>(decoder, options);
  decoder.set_device(backend);
  return backend;
}

}  // namespace billion::gpu
