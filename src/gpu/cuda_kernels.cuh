// The CUDA kernels of the forward pass, as host-side launchers on a stream. Shapes as in the CPU
// decoder: row-major, [tokens, width]. All arithmetic is float32; the KV cache element type is
// float or __half (Kv below). The CPU kernels (src/kernels, scalar references) define what each
// computes; tests/test_cuda.cpp checks the whole forward pass against transformers' logits.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace billion::gpu {

// Row-wise norm: out[r] = norm(in[r]) * w[(r % w_period)] (+ b), rows of `width` floats; w and b
// hold w_period rows (1 for a model norm, n_heads for StableLM's per-head q/k norm); b may be
// null. RMSNorm when layer_norm is false.
void launch_norm(const float* in, const float* w, const float* b, float* out, int64_t rows, int width, int w_period,
                 float eps, bool layer_norm, cudaStream_t s);

// y[t, :] += bias for t < rows.
void launch_add_bias(float* y, const float* bias, int64_t rows, int width, cudaStream_t s);
// y = a + b, elementwise over n.
void launch_add(const float* a, const float* b, float* y, int64_t n, cudaStream_t s);
// y = silu(gate) * up; y may alias up.
void launch_silu_mul(const float* gate, const float* up, float* y, int64_t n, cudaStream_t s);
// Exact GELU (erf), in place.
void launch_gelu(float* x, int64_t n, cudaStream_t s);
// Round to half (cuBLAS F16 inputs).
void launch_to_half(const float* x, __half* y, int64_t n, cudaStream_t s);

// A fused QKV projection's rows [n, q_dim + 2 kv_dim] split into q [n, q_dim], k, v [n, kv_dim]:
// per_head = GPT-NeoX's [n_heads, 3, head_dim] order, else [all q; all k; all v].
void launch_split_qkv(const float* qkv, float* q, float* k, float* v, int64_t n, int q_dim, int kv_dim, int head_dim,
                      bool per_head, cudaStream_t s);

// One token's matrix-vector product, y [rows] = W [rows, cols] · x [cols] (+ bias if not null),
// W half or float, F32 accumulation; cols a multiple of 8. Decode's products: cuBLAS's per-call
// overhead for a single token cost more than reading the weights.
template <typename W>
void launch_gemv(const W* w, const float* x, const float* bias, float* y, int64_t rows, int cols, cudaStream_t s);

// Rotary embedding in place, x [n, n_heads, head_dim], token t at position start + t; the first
// n_rot dims of each head rotate (half_split: i with i + n_rot/2, else 2i with 2i+1).
void launch_rope(float* x, int64_t n, int n_heads, int head_dim, int n_rot, const float* inv_freq, int start,
                 bool half_split, cudaStream_t s);

// Writes k, v [n, kv_dim] to a layer's cache rows start .. start+n-1 (cache row = kv_dim values).
template <typename Kv>
void launch_store_kv(const float* k, const float* v, Kv* k_cache, Kv* v_cache, int64_t n, int kv_dim, int start, cudaStream_t s);

// Causal attention for tokens at positions start .. start+n-1 over one layer's cache:
// out [n, n_heads, head_dim] = softmax(scale q·k) v, query head h reads KV head h / (n_heads/n_kv).
// scores: scratch of n × n_heads × (start + n) floats.
template <typename Kv>
void launch_attention(const float* q, const Kv* k_cache, const Kv* v_cache, float* out, float* scores, int64_t n, int start,
                      int n_heads, int n_kv_heads, int head_dim, float scale, cudaStream_t s);

}  // namespace billion::gpu
