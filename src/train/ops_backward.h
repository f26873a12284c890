// Forward and backward passes of every operation the training forward uses, written once as
// templates and instantiated for float (training) and double (the finite-difference checks in
// tests/test_train_grad.cpp). Row-major; shapes beside the arguments as [rows, cols]. A backward
// function takes the upstream gradient dy and *accumulates* into dx (+=), so branches of the
// residual stream add up without extra buffers; LoRA weight gradients accumulate too, which is
// what gradient accumulation needs.
//
// Frozen-weight matmuls are not here: they go through kernels::matmul (float) in
// training_forward.cpp; only the small parameter-free ops and LoRA live in this file.
#pragma once
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"

namespace billion::train {

// RMSNorm: y = x * r * w, r = 1/sqrt(mean(x²) + eps). x, y [n, h]; w [h]; rstd [n] saved.
template <typename T>
void rmsnorm_forward(const T* x, const float* w, T* y, T* rstd, int64_t n, int64_t h, float eps);
// dx [n, h] += dL/dx (the weight is frozen: no dw).
template <typename T>
void rmsnorm_backward(const T* x, const float* w, const T* rstd, const T* dy, T* dx, int64_t n, int64_t h);

// LayerNorm with optional bias: y = (x - mean) * r * w + b (biased variance, as torch).
// mean, rstd [n] saved.
template <typename T>
void layernorm_forward(const T* x, const float* w, const float* b, T* y, T* mean, T* rstd, int64_t n, int64_t h, float eps);
template <typename T>
void layernorm_backward(const T* x, const float* w, const T* mean, const T* rstd, const T* dy, T* dx, int64_t n, int64_t h);

// Rotary embedding in place on x [n, n_heads * head_dim]; token t uses cos/sin row t of
// cos, sin [n, n_rot/2]. adjacent=false: HF half split (i with i + n_rot/2); true: GGUF llama
// adjacent pairs (2i, 2i+1). The backward is the inverse rotation applied to the gradient.
template <typename T>
void rope_forward(T* x, int64_t n, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos, const float* sin, bool adjacent);
template <typename T>
void rope_backward(T* dx, int64_t n, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos, const float* sin, bool adjacent);

// Causal self-attention of one sequence of n tokens with grouped KV heads:
//   q [n, nh*hd], k, v [n, nkv*hd], out [n, nh*hd]; lse [nh, n] saved (log-sum-exp of each
//   query's scaled scores), so the backward recomputes the probabilities instead of storing
//   [nh, n, n]. Query head h reads KV head h / (nh / nkv). Work is split over KV heads.
template <typename T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, int64_t n, int64_t nh, int64_t nkv, int64_t hd,
                       ThreadPool* pool);
// dq, dk, dv [same shapes] += gradients, from dout [n, nh*hd].
template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* out, const T* lse, const T* dout, T* dq, T* dk, T* dv,
                        int64_t n, int64_t nh, int64_t nkv, int64_t hd, ThreadPool* pool);

// SwiGLU: y = silu(g) * u, elementwise over [n].
template <typename T>
void swiglu_forward(const T* g, const T* u, T* y, int64_t n);
template <typename T>
void swiglu_backward(const T* g, const T* u, const T* dy, T* dg, T* du, int64_t n);
// Exact (erf) GELU, torch's default.
template <typename T>
void gelu_forward(const T* x, T* y, int64_t n);
template <typename T>
void gelu_backward(const T* x, const T* dy, T* dx, int64_t n);

// Embedding lookup backward: dtable [vocab, h] row ids[t] += dy[t] (for completeness; LoRA
// training leaves the table frozen).
template <typename T>
void embedding_backward(const int32_t* ids, const T* dy, T* dtable, int64_t n, int64_t h);

// Cross-entropy over logits [n, vocab] against targets [n] (-100 = ignored). Returns the sum of
// the per-token losses (in double), and replaces the logits by scale * dL/dlogits (softmax -
// onehot, zero rows for ignored targets) so the caller can feed them straight back.
template <typename T>
double cross_entropy_forward_backward(T* logits, const int32_t* targets, int64_t n, int64_t vocab, double scale, ThreadPool* pool);

// LoRA branch of a linear layer: y [n, out] += scale * (x Aᵀ) Bᵀ with x [n, in], A [r, in],
// B [out, r]; u [n, r] = x Aᵀ is saved for the backward. Dropout, when used, is applied by the
// caller to x before this (PEFT: lora_B(lora_A(dropout(x)))).
template <typename T>
void lora_forward(const T* x, const T* a, const T* b, T scale, T* u, T* y, int64_t n, int64_t in, int64_t out, int64_t r,
                  ThreadPool* pool);
// ga [r, in] += dL/dA, gb [out, r] += dL/dB, dx [n, in] += dL/dx (when dx is not null).
template <typename T>
void lora_backward(const T* x, const T* a, const T* b, T scale, const T* u, const T* dy, T* ga, T* gb, T* dx, int64_t n, int64_t in,
                   int64_t out, int64_t r, ThreadPool* pool);

// Plain dense helpers used by the double-precision path and small products:
// y [n, m] = x [n, k] · wᵀ (w [m, k] floats).
template <typename T>
void matmul_nt(const T* x, const float* w, T* y, int64_t n, int64_t k, int64_t m, ThreadPool* pool);

}  // namespace billion::train
