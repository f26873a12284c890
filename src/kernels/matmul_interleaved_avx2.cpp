// AVX2 tiles for Q4_0 and Q8_0 weights in the interleaved layout (kernels/interleave.h), for CPUs
// without AVX-512 VNNI (Zen 3, the machine): one 256-bit lane per weight row, so a
// 64-byte step of a group is two registers of 8 rows each. Without vpdpbusd the four products
// per lane come from maddubs (unsigned × signed bytes → int16 pairs) and madd with ones
// (→ int32); both stay exact: Q4_0's nibbles are ≤ 15 (pairs ≤ 2·15·127), and Q8_0 uses the
// sign trick, |w| × (a with w's sign), pairs ≤ 2·128·127 < 2^15 (Q4_0 adds its eight maddubs
// results in int16 first, dot8 below). Each lane then computes
// fma(float(isum), d_w·d_a, acc) per block in order: bit-identical to ref::mm_q4_0x16 /
// mm_q8_0x16, as the AVX-512 tiles are.
//
// Tiles (16 YMM registers): decode, a layout tile (up to four groups, two halves of 8 rows each)
// × one token, in memory order; prefill, one half (8 rows) × 4 tokens with the half's 8 weight
// operands in registers.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/impl.h"
#include "kernels/interleave.h"

namespace billion::kernels::avx2 {
namespace {

#define BILLION_ALWAYS_INLINE inline __attribute__((always_inline))

constexpr int64_t kStepBytes = kInterleaveStepBytes;
constexpr int64_t kBlockScaleBytes = kInterleaveRows * 2;  // 16 rows' fp16 scales

BILLION_ALWAYS_INLINE __m256i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// The 8 weight operands of one half (h = 0: rows 0-7, 1: rows 8-15) of a block; operand k pairs
// with activation bytes 4k..4k+3. dot(op, a) = the int32 sums of four products per row.
struct Q4_0 {
  static constexpr GgmlType type = GgmlType::Q4_0;
  static constexpr int64_t block_bytes = 4 * kStepBytes;
  static constexpr int offset = 8;  // nibbles are w + 8: start each block at -8·Σa (q8a_block_sums)
  static BILLION_ALWAYS_INLINE void operands(const uint8_t* q, int h, __m256i* op) {
    const __m256i mask = _mm256_set1_epi8(0x0F);
    for (int s = 0; s < 4; ++s) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + s * kStepBytes + 32 * h));
      op[s] = _mm256_and_si256(v, mask);
      op[s + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
    }
  }
  // Σ_k dot(op[k], a bytes 4k..4k+3) for the block's 32 activation bytes. The eight maddubs
  // results are added as int16 before one madd: a nibble pair is ≤ 2·15·127 = 3810, so eight are
  // ≤ 30480 < 2^15 and the int16 sum is exact, the same integer as eight madds at half the
  // multiplier work (the port prefill was bound by).
  static BILLION_ALWAYS_INLINE __m256i dot8(const __m256i* op, const int8_t* a) {
    __m256i s16 = _mm256_maddubs_epi16(op[0], broadcast4(a));
    for (int k = 1; k < 8; ++k) s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(op[k], broadcast4(a + 4 * k)));
    return _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
  }
};
struct Q8_0 {
  static constexpr GgmlType type = GgmlType::Q8_0;
  static constexpr int64_t block_bytes = 8 * kStepBytes;
  static constexpr int offset = 0;  // signed weights: no correction
  static BILLION_ALWAYS_INLINE void operands(const uint8_t* q, int h, __m256i* op) {
    for (int s = 0; s < 8; ++s) op[s] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + s * kStepBytes + 32 * h));
  }
  // A pair here reaches 2·128·127 = 32512: no room to add two in int16, so each goes to int32.
  static BILLION_ALWAYS_INLINE __m256i dot8(const __m256i* op, const int8_t* a) {
    __m256i even = _mm256_setzero_si256(), odd = _mm256_setzero_si256();
    for (int k = 0; k < 8; k += 2) {
      even = _mm256_add_epi32(even, dot(op[k], broadcast4(a + 4 * k)));
      odd = _mm256_add_epi32(odd, dot(op[k + 1], broadcast4(a + 4 * k + 4)));
    }
    return _mm256_add_epi32(even, odd);
  }
  static BILLION_ALWAYS_INLINE __m256i dot(__m256i w, __m256i a) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w)), _mm256_set1_epi16(1));
  }
};

BILLION_ALWAYS_INLINE __m256 half_scales(const uint8_t* scales, int h) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + 16 * h)));
}

// Half h of one group × T tokens: y[j][0..7] for tokens a[j]. Block b's scales at
// scales + b·stride, its quants at quants + b·stride.
template <typename F, int T>
void half_tokens(const uint8_t* scales, const uint8_t* quants, int64_t stride, int h, int64_t nb,
                 const BlockQ8A* const* a, const int32_t* const* sums, float* const* y) {
  __m256 acc[T];
  for (int j = 0; j < T; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m256i op[8];
    F::operands(quants + b * stride, h, op);
    const __m256 dw = half_scales(scales + b * stride, h);
    for (int j = 0; j < T; ++j) {
      const int8_t* q = a[j][b].qs;
      const __m256i isum = _mm256_add_epi32(_mm256_set1_epi32(-F::offset * sums[j][b]), F::dot8(op, q));
      acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, _mm256_set1_ps(a[j][b].d)), acc[j]);
    }
  }
  for (int j = 0; j < T; ++j) _mm256_storeu_ps(y[j], acc[j]);
}

// A layout tile of G groups × one token: y[0 .. 16·G), the tile's blocks in memory order (one
// stream front to back, as the AVX-512 tile; no software prefetch, as there).
template <typename F, int G>
void tile_one_token(const uint8_t* tile, int64_t nb, const BlockQ8A* a, const int32_t* sums, float* y) {
  constexpr int64_t kStride = G * (kBlockScaleBytes + F::block_bytes);
  __m256 acc[G][2];
  for (int g = 0; g < G; ++g) acc[g][0] = acc[g][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* block = tile + b * kStride;
    const __m256 da = _mm256_set1_ps(a[b].d);
    for (int g = 0; g < G; ++g)
      for (int h = 0; h < 2; ++h) {
        __m256i op[8];
        F::operands(block + G * kBlockScaleBytes + g * F::block_bytes, h, op);
        const __m256i isum = _mm256_add_epi32(_mm256_set1_epi32(-F::offset * sums[b]), F::dot8(op, a[b].qs));
        acc[g][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(half_scales(block + g * kBlockScaleBytes, h), da), acc[g][h]);
      }
  }
  for (int g = 0; g < G; ++g) {
    _mm256_storeu_ps(y + g * kInterleaveRows, acc[g][0]);
    _mm256_storeu_ps(y + g * kInterleaveRows + 8, acc[g][1]);
  }
}

template <typename F, int T>
BILLION_ALWAYS_INLINE void run_half_tokens(const uint8_t* scales, const uint8_t* quants, int64_t stride, int h,
                                           int64_t nb, const uint8_t* act, size_t arb, int64_t t0, float* y, int64_t ys) {
  const BlockQ8A* a[T];
  const int32_t* st[T];
  float* yt[T];
  for (int j = 0; j < T; ++j) {
    a[j] = reinterpret_cast<const BlockQ8A*>(act + (t0 + j) * arb);
    st[j] = q8a_block_sums(act + (t0 + j) * arb, nb);
    yt[j] = y + (t0 + j) * ys + 8 * h;
  }
  half_tokens<F, T>(scales, quants, stride, h, nb, a, st, yt);
}

template <typename F>
void mm_interleaved(const uint8_t* w, size_t, int64_t nr, const void* act_v, size_t arb, int64_t nt, float* y,
                    int64_t ys, int64_t cols) {
  const auto* act = static_cast<const uint8_t*>(act_v);
  const BlockTiles tiles = block_tiles(F::type, nr, cols);
  const int64_t nb = tiles.blocks;
  if (nt == 1) {
    const auto* a = reinterpret_cast<const BlockQ8A*>(act);
    const int32_t* sums = q8a_block_sums(act, nb);
    for_each_tile(tiles, [&](int64_t t, auto groups) {
      tile_one_token<F, groups()>(w + tiles.tile_start(t), nb, a, sums, y + t * kTileRows);
    });
    return;
  }
  for (int64_t g = 0; g < tiles.groups; ++g) {
    const int64_t tile = g / kTileGroups, stride = tiles.tile_block_bytes(tile);
    const uint8_t* scales = w + tiles.header(tile, g % kTileGroups);
    const uint8_t* quants = w + tiles.quants(tile, g % kTileGroups);
    float* yg = y + g * kInterleaveRows;
    for (int h = 0; h < 2; ++h) {
      int64_t t = 0;
      for (; t + 4 <= nt; t += 4) run_half_tokens<F, 4>(scales, quants, stride, h, nb, act, arb, t, yg, ys);
      switch (nt - t) {
        case 3: run_half_tokens<F, 3>(scales, quants, stride, h, nb, act, arb, t, yg, ys); break;
        case 2: run_half_tokens<F, 2>(scales, quants, stride, h, nb, act, arb, t, yg, ys); break;
        case 1: run_half_tokens<F, 1>(scales, quants, stride, h, nb, act, arb, t, yg, ys); break;
        default: break;
      }
    }
  }
}

#undef BILLION_ALWAYS_INLINE

}  // namespace

void mm_q4_0x16(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                int64_t ys, int64_t cols) {
  mm_interleaved<Q4_0>(w, wrb, nr, act, arb, nt, y, ys, cols);
}
void mm_q8_0x16(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                int64_t ys, int64_t cols) {
  mm_interleaved<Q8_0>(w, wrb, nr, act, arb, nt, y, ys, cols);
}

}  // namespace billion::kernels::avx2
