// Q4_0 and Q8_0 weights re-laid at load for integer dot products over 16 rows at once
// (WeightLayout::Interleaved16; "Q4_0x16", "Q8_0x16").
//
// In a GGUF file a row is a run of blocks (fp16 scale, then 16 bytes of nibbles for Q4_0 or 32
// int8 for Q8_0), so a kernel that wants one output per vector lane must gather 16 rows' scales
// and quants from 16 places, and block loads are unaligned. Interleaved, the 16 rows of a group
// lie together:
//
//   group g (rows 16g .. 16g+15), nb = cols/32 blocks, 16 × row_bytes bytes in all, as before:
//     [scales: nb × 16 fp16]          block b's 16 row scales at 32·b
//     [quants: nb × 16·Q bytes]       Q = 16 (Q4_0) or 32 (Q8_0) quant bytes per block and row;
//                                     block b is Q/4 steps of 64 bytes: step s = for row
//                                     i = 0..15 the row's quant bytes 4s .. 4s+3
//
// so one 64-byte load gives each of the 16 lanes four bytes of its own row. Step s pairs with
// activation elements 4s..4s+3 (Q8_0: byte k is element k), and for Q4_0 also 16+4s..16+4s+3
// (byte k holds element k in its low nibble, k+16 in its high one). One vpdpbusd per operand
// adds four products to every lane. The size is unchanged, a group starts where its first row
// started, and every step is 64-byte aligned when the buffer is and nb is even.
//
// The arithmetic of an interleaved matmul (ref::mm_q4_0x16 / ref::mm_q8_0x16 define it; every
// ISA gives their bits): per (row, token) and block b in order, the exact integer dot product
// isum_b (of q-8 for Q4_0, of the int8 for Q8_0, with the activation's int8), then
// acc = fma(float(isum_b), d_w·d_a, acc) from acc = 0. That is one float step per block and
// output instead of the AVX2 vec_dot's eight-lane chain, so a result differs from the plain
// layout's by float rounding only (tests/test_interleave.cpp bounds it).
#pragma once
#include <cstddef>
#include <cstdint>

#include "formats/ggml_types.h"
#include "kernels/quant.h"

namespace billion::kernels {

constexpr int kInterleaveRows = 16;
constexpr int64_t kInterleaveStepBytes = 64;  // one load: 4 quant bytes of each of the 16 rows

// A group starts with its scales (16 fp16 per block); its quants start this many bytes later.
constexpr int64_t interleaved_quants_offset(int64_t nb) { return nb * kInterleaveRows * 2; }

// The interleaved kernels take Q8A activation rows followed by nb int32 block sums Σq (the
// Q4_0/Q8_0 offset corrections need them): the matmul driver writes them once per call, next to
// the quantization, instead of every tile call recomputing them for every row chunk.
inline const int32_t* q8a_block_sums(const uint8_t* act_row, int64_t nb) {
  return reinterpret_cast<const int32_t*>(act_row + nb * sizeof(BlockQ8A));
}

// True when a matrix of this type and shape can be interleaved: Q4_0 or Q8_0, rows a multiple of
// 16 (every matrix of the target models) and cols a multiple of 32.
bool can_interleave(GgmlType type, int64_t rows, int64_t cols);

// dst (rows × row_bytes bytes, row_bytes = type_row_bytes(type, cols)) ← the matrix at src,
// whose row r is at src + r·src_row_bytes, in the layout above. Requires can_interleave.
void interleave_rows(GgmlType type, const uint8_t* src, size_t src_row_bytes, int64_t rows, int64_t cols,
                     uint8_t* dst);

// Row r of an interleaved matrix back as floats: out [cols], the values dequantize_row gives
// for the original row (the layout moves bytes, it changes none).
void dequantize_interleaved_row(GgmlType type, const uint8_t* data, int64_t cols, int64_t r, float* out);

}  // namespace billion::kernels
