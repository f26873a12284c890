// Internal: the per-ISA kernel functions that dispatch.cpp puts into the KernelTables. Only
// dispatch.cpp and the kernel files include this; everyone else uses kernels.h.
#pragma once
#include "kernels/kernels.h"
#include "kernels/quant.h"

namespace billion::kernels {

#define BILLION_KERNEL_LIST(ns)                                                                  \
  namespace ns {                                                                                 \
  void mm_f32(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t,    \
              int64_t);                                                                          \
  void mm_f16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t,    \
              int64_t);                                                                          \
  void mm_bf16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t,   \
               int64_t);                                                                         \
  /* F16 and BF16 in runs of four rows (interleave.h), the plain tiles' bits */                  \
  void mm_f16x4(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t,  \
                int64_t);                                                                        \
  void mm_bf16x4(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, \
                 int64_t);                                                                       \
  void mm_q8_0(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t,   \
               int64_t);                                                                         \
  void mm_q4_0(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t,   \
               int64_t);                                                                         \
  void mm_q4_1(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t,   \
               int64_t);                                                                         \
  void mm_q5_0(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t,   \
               int64_t);                                                                         \
  void mm_q5_1(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t,   \
               int64_t);                                                                         \
  void mm_q4_k(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t,   \
               int64_t);                                                                         \
  void mm_q5_k(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t,   \
               int64_t);                                                                         \
  void mm_q6_k(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t,   \
               int64_t);                                                                         \
  void quantize_q8a(const float* x, void* y, int64_t n);                                         \
  void quantize_q8k(const float* x, void* y, int64_t n);                                         \
  void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps);                  \
  void softmax(float* x, int64_t n);                                                             \
  void silu_mul(const float* gate, const float* up, float* y, int64_t n);                        \
  void add(const float* a, const float* b, float* y, int64_t n);                                 \
  void f32_to_f16(const float* x, uint16_t* y, int64_t n);                                       \
  void f16_to_f32(const uint16_t* x, float* y, int64_t n);                                       \
  void attention_f16(const float* q, int64_t q_stride, int64_t n_q, int64_t head_dim,            \
                     const uint16_t* k, const uint16_t* v, int64_t kv_stride, int64_t n_pos,     \
                     float scale, float* out, int64_t out_stride, float* scratch,                \
                     AttentionOrder order);                                                      \
  }

BILLION_KERNEL_LIST(ref)
BILLION_KERNEL_LIST(avx2)
#undef BILLION_KERNEL_LIST

// AVX-512 (F/BW/VL/DQ + VNNI) tiles for the hot 32-element formats (matmul_avx512.cpp); the
// AVX-512 table takes every other entry from the AVX2 table.
namespace avx512 {
void mm_q8_0(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_q4_0(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_q4_1(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
// Interleaved Q4_0/Q8_0 (matmul_interleaved_avx512.cpp), bit-identical to ref::mm_q*_0x16.
void mm_q4_0x16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_q8_0x16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
// Interleaved Q4_K (matmul_kquant_interleaved_avx512.cpp), bit-identical to ref::mm_q4_k.
void mm_q4_kx16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
// Interleaved Q6_K (matmul_q6_k_interleaved_avx512.cpp), bit-identical to ref::mm_q6_k.
void mm_q6_kx16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
// Interleaved Q8_0 in ggml's order (matmul_interleaved_avx512.cpp), bit-identical to ref::mm_q8_0x16_ggml.
void mm_q8_0x16_ggml(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_q4_1x16_ggml(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
// K-quant tiles (matmul_kquant_avx512.cpp), bit-identical to the scalar reference.
void mm_q4_k(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_q5_k(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_q6_k(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
// 16-bit float weights (matmul_float_avx512.cpp).
void mm_f16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_bf16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
// The same in runs of four interleaved rows (interleave.h), the plain tiles' bits.
void mm_f16x4(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_bf16x4(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
// Attention over the F16 cache (attention_avx512.cpp): head_dim 64 in ZMM registers, other sizes
// through avx2::attention_f16; the reference's bits either way.
void attention_f16(const float* q, int64_t q_stride, int64_t n_q, int64_t head_dim, const uint16_t* k,
                   const uint16_t* v, int64_t kv_stride, int64_t n_pos, float scale, float* out,
                   int64_t out_stride, float* scratch, AttentionOrder order);
}  // namespace avx512

// Interleaved Q4_0/Q8_0 for CPUs without AVX-512 (matmul_interleaved_avx2.cpp).
namespace avx2 {
void mm_q4_0x16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_q8_0x16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
// Interleaved Q8_0 × token tiles (matmul_q8_0_tokens_avx2.cpp), bit-identical to ref::mm_q8_0x16.
void mm_q8_0x16_tokens16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
// Interleaved Q4_K (matmul_kquant_interleaved_avx2.cpp), bit-identical to ref::mm_q4_k.
void mm_q4_kx16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
// Interleaved Q8_0 and Q4_1 in ggml's order (matmul_interleaved_ggml_avx2.cpp), bit-identical to
// ref::mm_q8_0x16_ggml / mm_q4_1x16_ggml.
void mm_q8_0x16_ggml(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_q4_1x16_ggml(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
// Interleaved Q6_K (matmul_q6_k_interleaved_avx2.cpp), bit-identical to ref::mm_q6_k.
void mm_q6_kx16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
}  // namespace avx2

// Reference-only kernels (the AVX2 table reuses them: the Q8K quantizer, and ops that are a
// negligible share of a forward pass: layernorm, gelu and both ropes).
namespace ref {
void mm_q4_0x16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_q8_0x16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_q4_kx16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_q6_kx16(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_q8_0x16_ggml(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void mm_q4_1x16_ggml(const uint8_t*, size_t, int64_t, const void*, size_t, int64_t, float*, int64_t, int64_t);
void layernorm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps);
void gelu(const float* x, float* y, int64_t n);
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos,
          const float* sin, RopeStyle style);
void rope_ggml(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos,
               const float* sin, RopeStyle style);
}  // namespace ref

}  // namespace billion::kernels
