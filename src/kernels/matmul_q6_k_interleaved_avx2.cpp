// AVX2 tile for Q6_K weights in the interleaved layout (kernels/interleave.h, "Q6_Kx16") against
// Q8K activations, for CPUs without AVX-512 VNNI: one 32-bit lane per weight row, so a 64-byte
// step of a group is two registers of 8 rows each, and no horizontal sums. Bit-identical to
// ref::mm_q6_k on the same rows, as the AVX-512 tile (matmul_q6_k_interleaved_avx512.cpp) is:
// per (row, token, super-block) the exact integer dot = Σ_j sc_j · Σ_{l in sub-block j}
// (u_l − 32)·a_l, then the reference's float expression sum += (d·d_a)·float(dot).
//
// Without vpdpbusd the products come from vpmaddubsw (unsigned 6-bit u × signed byte → int16
// pairs, each |.| ≤ 2·63·127 < 2^15: nothing saturates). A sub-block's four steps add into one
// int16 word pair per lane, and the −32 comes off there: minus the pair (32·Σ a over the
// elements of word 0, the same for word 1), which depends only on the token (offsets()). The
// true result, Σ (u − 32)·a over 8 elements, is at most 8·32·127 < 2^15, and vpaddw/vpsubw wrap
// modulo 2^16, so it comes out exact even where a partial sum wrapped on the way. One vpmaddwd
// with the int16 pair (sc_j, sc_j) then gives sc_j · isum_j per row as int32.
//
// Tiles (16 YMM registers): one group × up to 4 tokens for prefill (each rebuilt step serves
// every token), one group × one token for decode, prefetching the super-block after next into L2.
// Each super-block is walked for rows 0-7, then rows 8-15, so one half's values, sums and
// scales fit the registers.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/impl.h"
#include "kernels/interleave.h"

// No FMA contraction: the reference rounds every product.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace billion::kernels::avx2 {
namespace {

#define BILLION_ALWAYS_INLINE inline __attribute__((always_inline))

constexpr int64_t kStep = kInterleaveStepBytes;

BILLION_ALWAYS_INLINE __m256i broadcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// The −32 of sub-block j as the int16 pair a lane subtracts: word 0 of a lane collects the
// products of elements 4i and 4i+1 of each step i, word 1 those of 4i+2 and 4i+3, so
// off[j] = (32·Σ_i (a[4i] + a[4i+1]), 32·Σ_i (a[4i+2] + a[4i+3])) over the sub-block's elements.
BILLION_ALWAYS_INLINE void offsets(const BlockQ8K& a, int32_t* off) {
  const __m256i k32 = _mm256_set1_epi8(32);
  for (int k = 0; k < 8; ++k) {  // sub-blocks 2k (low 128-bit lane) and 2k+1 (high)
    __m256i p = _mm256_maddubs_epi16(k32, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * k)));
    p = _mm256_add_epi16(p, _mm256_srli_si256(p, 8));
    p = _mm256_add_epi16(p, _mm256_srli_si256(p, 4));  // 32-bit word 0 of each 128-bit lane
    off[2 * k] = _mm_cvtsi128_si32(_mm256_castsi256_si128(p));
    off[2 * k + 1] = _mm_cvtsi128_si32(_mm256_extracti128_si256(p, 1));
  }
}

// Sub-block j's scales of rows 8·half .. 8·half+7 as int16 pairs (sc, sc), one per lane.
BILLION_ALWAYS_INLINE __m256i scale_pairs(const uint8_t* scales, int j, int half) {
  int64_t v;
  std::memcpy(&v, scales + 16 * j + 8 * half, 8);
  const __m256i s = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(v));
  return _mm256_blend_epi16(s, _mm256_slli_epi32(s, 16), 0xAA);
}

// A group × T tokens: y[t][0..15] for tokens a[t].
template <int T>
void group_tokens(const uint8_t* group, int64_t nb, const BlockQ8K* const* a, float* const* y) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
  __m256 sum[T][2];
  for (int t = 0; t < T; ++t) sum[t][0] = sum[t][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* sb = group + b * kQ6KxBytes;
    if constexpr (T == 1)
      for (int64_t off = 0; off < kQ6KxBytes + 64; off += 64)
        _mm_prefetch(reinterpret_cast<const char*>(sb + 2 * kQ6KxBytes + off), _MM_HINT_T1);
    const uint8_t* ql = sb + q6_kx_steps(b);
    const uint8_t* qh = ql + kQ6KxQh;
    const uint8_t* scales = ql + kQ6KxScales;
    int32_t off[T][16];
    for (int t = 0; t < T; ++t) offsets(a[t][b], off[t]);
    const __m256 d2[2] = {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sb + q6_kx_d(b)))),
                          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sb + q6_kx_d(b) + 16)))};
    for (int half = 0; half < 2; ++half) {
      __m256i dot[T];
      for (int t = 0; t < T; ++t) dot[t] = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h)
        for (int c = 0; c < 4; ++c) {
          // Sub-blocks j0 = 8h+c (low nibbles, bit pair c/2) and j1 = j0+4 (high nibbles, c/2+2).
          const int j0 = 8 * h + c, j1 = j0 + 4;
          __m256i lo[4], hi[4];
          for (int i = 0; i < 4; ++i) {
            const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + (16 * h + 4 * c + i) * kStep + 32 * half));
            const __m256i q =
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + (8 * h + 4 * (c % 2) + i) * kStep + 32 * half));
            const __m256i qlo = c / 2 == 0 ? _mm256_slli_epi16(q, 4) : _mm256_slli_epi16(q, 2);
            const __m256i qhi = c / 2 == 0 ? q : _mm256_srli_epi16(q, 2);
            lo[i] = _mm256_or_si256(_mm256_and_si256(l, low4), _mm256_and_si256(qlo, bits45));
            hi[i] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l, 4), low4), _mm256_and_si256(qhi, bits45));
          }
          const __m256i sc0 = scale_pairs(scales, j0, half), sc1 = scale_pairs(scales, j1, half);
          for (int t = 0; t < T; ++t) {
            const int8_t* x = a[t][b].qs;
            __m256i s0 = _mm256_sub_epi16(_mm256_maddubs_epi16(lo[0], broadcast4(x + 16 * j0)), _mm256_set1_epi32(off[t][j0]));
            __m256i s1 = _mm256_sub_epi16(_mm256_maddubs_epi16(hi[0], broadcast4(x + 16 * j1)), _mm256_set1_epi32(off[t][j1]));
            for (int i = 1; i < 4; ++i) {
              s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(lo[i], broadcast4(x + 16 * j0 + 4 * i)));
              s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(hi[i], broadcast4(x + 16 * j1 + 4 * i)));
            }
            dot[t] = _mm256_add_epi32(dot[t], _mm256_add_epi32(_mm256_madd_epi16(s0, sc0), _mm256_madd_epi16(s1, sc1)));
          }
        }
      for (int t = 0; t < T; ++t)
        sum[t][half] = _mm256_add_ps(sum[t][half], _mm256_mul_ps(_mm256_mul_ps(d2[half], _mm256_set1_ps(a[t][b].d)),
                                                                 _mm256_cvtepi32_ps(dot[t])));
    }
  }
  for (int t = 0; t < T; ++t) {
    _mm256_storeu_ps(y[t], sum[t][0]);
    _mm256_storeu_ps(y[t] + 8, sum[t][1]);
  }
}

template <int T>
BILLION_ALWAYS_INLINE void run_group(const uint8_t* group, int64_t nb, const uint8_t* act, size_t arb, int64_t t0,
                                     float* y, int64_t ys) {
  const BlockQ8K* a[T];
  float* yt[T];
  for (int j = 0; j < T; ++j) {
    a[j] = reinterpret_cast<const BlockQ8K*>(act + (t0 + j) * arb);
    yt[j] = y + (t0 + j) * ys;
  }
  group_tokens<T>(group, nb, a, yt);
}

#undef BILLION_ALWAYS_INLINE

}  // namespace

void mm_q6_kx16(const uint8_t* w, size_t wrb, int64_t nr, const void* act_v, size_t arb, int64_t nt, float* y,
                int64_t ys, int64_t cols) {
  const auto* act = static_cast<const uint8_t*>(act_v);
  const int64_t nb = cols / kQKK;
  const size_t group_bytes = kInterleaveRows * wrb;
  for (int64_t g = 0; g < nr / kInterleaveRows; ++g) {
    const uint8_t* group = w + g * group_bytes;
    float* yg = y + g * kInterleaveRows;
    int64_t t = 0;
    for (; t + 4 <= nt; t += 4) run_group<4>(group, nb, act, arb, t, yg, ys);
    switch (nt - t) {
      case 3: run_group<3>(group, nb, act, arb, t, yg, ys); break;
      case 2: run_group<2>(group, nb, act, arb, t, yg, ys); break;
      case 1: run_group<1>(group, nb, act, arb, t, yg, ys); break;
      default: break;
    }
  }
}

}  // namespace billion::kernels::avx2
