// AVX2 prefill tile for interleaved Q8_0 weights with the tokens in the vector lanes: a quad of
// 4 weight rows × a tile of 16 tokens, int16 products (vpmaddwd).
//
// Why not the sign-trick tile of matmul_interleaved_avx2.cpp: without vpdpbusd an exact int8
// product costs about the same number of vector instructions on AVX2 whichever way it is
// computed — sign + vpmaddubsw + vpmaddwd + vpaddd per 32 products, or vpmaddwd + vpaddd per 16 —
// and the multiplies share the same two pipes (bench_probe --int8-ops). What differs is the work
// around them: that tile broadcasts four activation bytes for every 32 products of 8 rows and
// ends each block with a horizontal add per token. Here the weights stay in the file's
// interleaved bytes; one vpmovsxbw widens a step of the quad (rows 0-3 × elements 4s..4s+3) and
// two in-lane shuffles per pair spread it as [row 0 | row 2] and [row 1 | row 3], each used
// against four token groups; the activations arrive already widened and arranged (the token
// tiles of interleave.h, made once per matmul by the driver), four tokens per 128-bit load
// broadcast to both halves; a block ends with one convert and fma per 8 outputs.
//
// Accumulators, per quad and token group c (tokens 4c..4c+3): acc02[c] = [row 0 × the 4 tokens |
// row 2 × the 4 tokens], acc13[c] likewise for rows 1 and 3. The integer sums are exact (a pair
// ≤ 2·128·127, a block ≤ 16 pairs), and every (row, token) computes fma(float(isum), d_w·d_a, acc)
// per block in order from 0: the bits of ref::mm_q8_0x16 and of the other ISAs' interleaved tiles.
#include <immintrin.h>

#include <cstdint>

#include "kernels/impl.h"
#include "kernels/interleave.h"

namespace billion::kernels::avx2 {
namespace {

constexpr int kQuadRows = 4;
constexpr int kQuads = kInterleaveRows / kQuadRows;
constexpr int kTokenGroups = kTokenTile / 4;
constexpr int kSteps = kQK / 4;  // 64-byte steps per block
// Blocks ahead that a group's first pass prefetches: 16 (about 35 KB) ran faster than 4 and 8 in
// trial runs (bench_kernels, TinyLlama shapes, BILLION_KERNELS=avx2 on the Intel Xeon VM).
constexpr int64_t kFetchAhead = 16;

// Float accumulators of one quad × one token tile, in the register order above:
// acc[0][c] = acc02[c], acc[1][c] = acc13[c].
struct QuadAcc {
  alignas(32) float v[2][kTokenGroups][8];
};

// q: the quad's quants (step s of block b at q + b·stride + 64·s), scales: its 4 fp16 scales of
// block 0 (block b at + b·stride); tile: the token tile. fetch: for quad 0 on a group's first
// pass, which reads the matrix from memory: prefetch the whole group's step lines and scales
// kFetchAhead blocks ahead (q and scales are then the group's own; the other quads find the lines
// in cache).
__attribute__((noinline)) void quad_tile(const uint8_t* q, const uint8_t* scales, int64_t stride, const uint8_t* tile,
                                         int64_t nb, QuadAcc* out, bool fetch) {
  for (int e = 0; e < 2; ++e)
    for (int c = 0; c < kTokenGroups; ++c) _mm256_store_ps(out->v[e][c], _mm256_setzero_ps());
  for (int64_t b = 0; b < nb; ++b) {
    if (fetch && b + kFetchAhead < nb) {
      const uint8_t* ahead = q + (b + kFetchAhead) * stride;
      for (int s = 0; s < kSteps; ++s) _mm_prefetch(reinterpret_cast<const char*>(ahead + s * kInterleaveStepBytes), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(scales + (b + kFetchAhead) * stride), _MM_HINT_T0);
    }
    const uint8_t* qb = q + b * stride;
    const uint8_t* ab = tile + b * kTokenTileBlockBytes;
    __m256i acc02[kTokenGroups], acc13[kTokenGroups];
    for (int c = 0; c < kTokenGroups; ++c) acc02[c] = acc13[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int s = 0; s < kSteps; ++s) {
      // Rows 0-3 × elements 4s..4s+3 as int16; int32 lane 2r + e is row r's pair 2s + e.
      const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qb + s * kInterleaveStepBytes)));
      for (int e = 0; e < 2; ++e) {
        const __m256i w02 = e == 0 ? _mm256_shuffle_epi32(wv, 0x00) : _mm256_shuffle_epi32(wv, 0x55);
        const __m256i w13 = e == 0 ? _mm256_shuffle_epi32(wv, 0xAA) : _mm256_shuffle_epi32(wv, 0xFF);
        const uint8_t* pair = ab + 64 * (2 * s + e);
        for (int c = 0; c < kTokenGroups; ++c) {
          const __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pair + 16 * c)));
          acc02[c] = _mm256_add_epi32(acc02[c], _mm256_madd_epi16(w02, a));
          acc13[c] = _mm256_add_epi32(acc13[c], _mm256_madd_epi16(w13, a));
          // Pin the running sums to registers step by step: otherwise GCC reassociates the
          // additions into a tree over the block and keeps the products on the stack.
          asm("" : "+x"(acc02[c]), "+x"(acc13[c]));
        }
      }
    }
    // Scales: [d0 ×4 | d2 ×4] and [d1 ×4 | d3 ×4] times each token group's 4 d (both halves).
    const __m128 dq = _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(scales + b * stride)));
    const __m256 dw02 = _mm256_set_m128(_mm_shuffle_ps(dq, dq, 0xAA), _mm_shuffle_ps(dq, dq, 0x00));
    const __m256 dw13 = _mm256_set_m128(_mm_shuffle_ps(dq, dq, 0xFF), _mm_shuffle_ps(dq, dq, 0x55));
    const float* da = reinterpret_cast<const float*>(ab + kTokenTile * 64);
    for (int c = 0; c < kTokenGroups; ++c) {
      const __m256 dac = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(da + 4 * c));
      _mm256_store_ps(out->v[0][c], _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc02[c]), _mm256_mul_ps(dw02, dac),
                                                    _mm256_load_ps(out->v[0][c])));
      _mm256_store_ps(out->v[1][c], _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc13[c]), _mm256_mul_ps(dw13, dac),
                                                    _mm256_load_ps(out->v[1][c])));
    }
  }
}

// y[j·ys + 4q + r] for the first n tokens j of the tile and the group's 16 rows (4q + r), from
// the four quads' accumulators; each token's 16 rows are written together (one cache line).
void store_group(const QuadAcc* quads, int64_t n, float* y, int64_t ys) {
  for (int c = 0; c < kTokenGroups && 4 * c < n; ++c) {
    __m128 rows[kQuads][4];  // [quad][token 4c + i] = the token's rows 0-3 of the quad
    for (int q = 0; q < kQuads; ++q) {
      const __m256 a = _mm256_load_ps(quads[q].v[0][c]), b = _mm256_load_ps(quads[q].v[1][c]);
      // unpacklo: [r0t0 r1t0 r0t1 r1t1 | r2t0 r3t0 r2t1 r3t1]; 64-bit order 0 2 1 3 puts
      // token 0's rows 0-3 in the low half and token 1's in the high half.
      const __m256d lo = _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_unpacklo_ps(a, b)), 0xD8);
      const __m256d hi = _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_unpackhi_ps(a, b)), 0xD8);
      rows[q][0] = _mm256_castps256_ps128(_mm256_castpd_ps(lo));
      rows[q][1] = _mm256_extractf128_ps(_mm256_castpd_ps(lo), 1);
      rows[q][2] = _mm256_castps256_ps128(_mm256_castpd_ps(hi));
      rows[q][3] = _mm256_extractf128_ps(_mm256_castpd_ps(hi), 1);
    }
    for (int i = 0; i < 4 && 4 * c + i < n; ++i)
      for (int q = 0; q < kQuads; ++q) _mm_storeu_ps(y + (4 * c + i) * ys + kQuadRows * q, rows[q][i]);
  }
}

}  // namespace

void mm_q8_0x16_tokens16(const uint8_t* w, size_t, int64_t nr, const void* act_v, size_t arb, int64_t nt, float* y,
                         int64_t ys, int64_t cols) {
  const auto* act = static_cast<const uint8_t*>(act_v);
  const BlockTiles tiles = block_tiles(GgmlType::Q8_0, nr, cols);
  const int64_t nb = tiles.blocks;
  QuadAcc quads[kQuads];
  for (int64_t g = 0; g < tiles.groups; ++g) {
    const int64_t tile = g / kTileGroups, stride = tiles.tile_block_bytes(tile);
    const uint8_t* scales = w + tiles.header(tile, g % kTileGroups);
    const uint8_t* quants = w + tiles.quants(tile, g % kTileGroups);
    // Token tile outermost: the tile stays in cache while the group's four quads pass over it.
    for (int64_t t0 = 0; t0 < nt; t0 += kTokenTile) {
      for (int q = 0; q < kQuads; ++q)
        quad_tile(quants + 16 * q, scales + 2 * kQuadRows * q, stride, act + t0 * arb, nb, &quads[q], t0 == 0 && q == 0);
      store_group(quads, nt - t0 < kTokenTile ? nt - t0 : kTokenTile, y + t0 * ys + g * kInterleaveRows, ys);
    }
  }
}

}  // namespace billion::kernels::avx2
