// ggml weight block formats: the block structs (byte-identical to ggml-common.h), scalar
// reference dequantization for every type the engine runs, and scalar reference quantization
// that rounds exactly as ggml's *_ref quantizers (so a file we write is the file llama.cpp
// writes). docs/QUANTIZATION.md describes each format and its error bound.
//
// Weights are used in place in the memory-mapped file: GGUF aligns tensor data to 32 bytes and
// every block size below is even, so the 2-byte alignment of these structs always holds
// (BlockQ8K, an activation format we only create ourselves, needs 4).
#pragma once
#include <cstddef>
#include <cstdint>

#include "formats/ggml_types.h"

namespace billion::kernels {

constexpr int kQK = 32;    // elements per block of the 32-element formats
constexpr int kQKK = 256;  // elements per K-quant super-block

// `half` fields are IEEE fp16 bit patterns.
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };                        // y = d*q
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };                       // y = d*(q-8)
struct BlockQ4_1 { uint16_t d; uint16_t m; uint8_t qs[16]; };           // y = d*q + m
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };        // y = d*(q-16)
struct BlockQ5_1 { uint16_t d; uint16_t m; uint8_t qh[4]; uint8_t qs[16]; };  // y = d*q + m
struct BlockQ4_K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
// Activations for the K-quant dot products: ggml's block_q8_K, with the values ggml's
// quantize_row_q8_K writes. bsums[i] = sum of qs[16i..16i+15]. d may be negative: ggml scales by
// -127/x_max with x_max the (signed) element of largest magnitude.
struct BlockQ8K { float d; int8_t qs[256]; int16_t bsums[16]; };
// Activations for the 32-element formats. Never in a file: it carries the values of ggml's
// block_q8_0 (Q8_0/Q4_0/Q5_0 weights) and block_q8_1 (Q4_1/Q5_1 weights) as its AVX2
// quantize_row_q8_0/q8_1 compute them, with the two fp16 fields widened to float so the dot
// products need no conversion: d = fp16(max|x| / 127), qs = rint(x · 127/max|x|) from the fp32
// reciprocal (ties to even), s = fp16(d_fp32 · sum(qs)) with the unrounded d. Matching ggml here
// is what makes our logits agree with llama.cpp's (docs/QUANTIZATION.md, "Activations").
struct BlockQ8A { float d; float s; int8_t qs[32]; };

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8K) == 292 && sizeof(BlockQ8A) == 40);

// True for the types dequantize_row and matmul accept: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1
// Q4_K Q5_K Q6_K.
bool weight_type_supported(GgmlType type);
// Elements per block (1 for float types) and bytes per block; 0 for unsupported types.
int type_block_elements(GgmlType type);
size_t type_block_bytes(GgmlType type);
// Bytes of one row of n elements (n must be a multiple of the block size).
size_t type_row_bytes(GgmlType type, int64_t n);

// Scalar reference, bit-identical to ggml's dequantize_row_* and to gguf-py's
// gguf.quants.dequantize. src: one row of n elements in `type`; dst: [n] floats.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// Scalar reference quantizers, byte-identical to ggml's quantize_row_*_ref (and gguf-py):
// F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1. Throws billion::Error for other types.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

// Activation quantizers (scalar reference; the dispatcher has vector versions that give the
// same bytes), byte-identical to ggml's x86 quantize_row_q8_0/q8_1/q8_K (checked against
// libggml-cpu by tests/test_quant.cpp's fixture). |q| <= 127, so the unsigned*signed byte
// products of the AVX2 dot products never saturate.
void quantize_row_q8a_ref(const float* x, BlockQ8A* y, int64_t n);  // n % 32 == 0
void quantize_row_q8k_ref(const float* x, BlockQ8K* y, int64_t n);  // n % 256 == 0

// 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of Q4_K/Q5_K.
inline void k_scale_min(int j, const uint8_t* s, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

}  // namespace billion::kernels
