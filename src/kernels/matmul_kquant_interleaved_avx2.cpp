// AVX2 tile for Q4_K weights in the interleaved layout (kernels/interleave.h, "Q4_Kx16") against
// Q8K activations, for CPUs without AVX-512 VNNI (Zen 3, the machine): one 32-bit lane
// per weight row, so a 64-byte step of a group is two registers of 8 rows each and no
// horizontal sums are needed. Bit-identical to ref::mm_q4_k on the same rows, as the AVX-512
// tile (matmul_kquant_interleaved_avx512.cpp) is: per (row, token, super-block) the exact integers
//   dot  = Σ_j sc_j · Σ_{l in sub-block j} q_l · a_l
//   mins = Σ_j m_j · (bsums[2j] + bsums[2j+1])
// then the reference's float expression sum += (d·d_a)·dot − (dmin·d_a)·mins, lane by lane.
//
// Without vpdpbusd the products come from vpmaddubsw (unsigned nibble × signed byte → int16
// pairs). The pairs of a whole sub-block are summed in int16: a lane's two int16 words each
// collect 16 products of |q·a| ≤ 15·128, so |sum| ≤ 30720 < 2^15, exact with no saturation. One
// vpmaddwd with the int16 pair (sc_j, sc_j) then gives sc_j · isum_j per row as int32, exact
// (|dot| ≤ 8·63·32·15·128 < 2^31). That is 8 vpmaddubsw + 7 vpaddw + 1 vpmaddwd per sub-block,
// 8 rows and token, against the plain-layout tile's 8 vpmaddubsw + 8 vpmaddwd + horizontal sums
// (matmul_kquant_avx2.cpp). The mins take 4 vpmaddwd per token and 8 rows: int16 pairs
// (m_2k, m_2k+1) against (B_2k, B_2k+1), B_j = bsums[2j] + bsums[2j+1] ≤ 16·2·128 (one vphaddw).
//
// Tiles (16 YMM registers), both walking a group's super-blocks in address order, each
// activation broadcast serving both halves: prefill, one group × up to 4 tokens (8 int16 sums in
// registers, each weight step unpacked once for the 4 tokens; 4 beat 5 and 6 in bench_kernels);
// decode, one group × one token, each step loaded once for its low and high nibbles (a group's
// super-blocks are one contiguous stream, which the hardware prefetcher follows: see
// matmul_kquant_interleaved_avx512.cpp for why there is no software prefetch).
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
constexpr int64_t kHalfBytes = kStep / 2;  // 8 rows' 4 bytes: one YMM of a step

// vpshufb controls (the same in both 128-bit lanes) acting on each 32-bit lane (one row's four
// bytes b0..b3): scale[j] makes the int16 pair (b_j, b_j); mins[k] the pair (b_2k, b_2k+1).
struct ByteControls {
  alignas(32) int8_t scale[4][32];
  alignas(32) int8_t mins[2][32];
  constexpr ByteControls() : scale{}, mins{} {
    for (int i = 0; i < 32; ++i) {
      const int base = (i % 16) / 4 * 4, pos = i % 4;
      const int8_t zero = -128;  // 0x80: a zero byte
      for (int j = 0; j < 4; ++j) scale[j][i] = pos % 2 == 0 ? static_cast<int8_t>(base + j) : zero;
      for (int k = 0; k < 2; ++k) mins[k][i] = pos % 2 == 0 ? static_cast<int8_t>(base + 2 * k + pos / 2) : zero;
    }
  }
};
constexpr ByteControls kControls{};

BILLION_ALWAYS_INLINE __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// An empty asm that pins a running sum in a register: without it GCC 12 turns each sub-block's
// chain of vpaddw into a tree evaluated after all the products, spilling most of them.
BILLION_ALWAYS_INLINE void in_register(__m256i& v) { __asm__("" : "+x"(v)); }

BILLION_ALWAYS_INLINE __m256i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// The 8 rows of half h: their 6-bit scales (sc[0]: sub-blocks 0-3, sc[1]: 4-7, one byte each per
// 32-bit lane) and mins (m[0], m[1]) of super-block sb, from its three scale steps: the bit
// layout of k_scale_min (quant.h) on all lanes at once.
BILLION_ALWAYS_INLINE void unpack_scales(const uint8_t* sb, int h, __m256i* sc, __m256i* m) {
  const uint8_t* p = sb + kQ4KxScales + kHalfBytes * h;
  const __m256i u0 = load32(p), u1 = load32(p + kStep), u2 = load32(p + 2 * kStep);
  const __m256i six = _mm256_set1_epi8(0x3F), four = _mm256_set1_epi8(0x0F), top = _mm256_set1_epi8(0x30);
  sc[0] = _mm256_and_si256(u0, six);
  m[0] = _mm256_and_si256(u1, six);
  // Sub-blocks 4-7: the low (high) nibble of word 2 and, as bits 4-5, bits 6-7 of word 0 (1);
  // the 32-bit shifts move bits across bytes, which the masks drop.
  sc[1] = _mm256_or_si256(_mm256_and_si256(u2, four), _mm256_and_si256(_mm256_srli_epi32(u0, 2), top));
  m[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), four), _mm256_and_si256(_mm256_srli_epi32(u1, 2), top));
}

// Sub-block j's scale as the int16 pair (sc_j, sc_j) in every lane.
BILLION_ALWAYS_INLINE __m256i scale_pair(const __m256i* sc, int j) {
  return _mm256_shuffle_epi8(sc[j / 4], _mm256_load_si256(reinterpret_cast<const __m256i*>(kControls.scale[j % 4])));
}

// The int16 pairs (m_2k, m_2k+1), k = 0..3, of every lane.
BILLION_ALWAYS_INLINE void min_pairs(const __m256i* m, __m256i* mp) {
  for (int k = 0; k < 4; ++k)
    mp[k] = _mm256_shuffle_epi8(m[k / 2], _mm256_load_si256(reinterpret_cast<const __m256i*>(kControls.mins[k % 2])));
}

// A token's pairs (B_2k, B_2k+1) in every lane, B_j = bsums[2j] + bsums[2j+1]: vphaddw leaves
// (B0,B1), (B2,B3) in 32-bit elements 0, 1 and (B4,B5), (B6,B7) in 4, 5.
BILLION_ALWAYS_INLINE void bsum_pairs(const int16_t* bsums, __m256i* bp) {
  const __m256i v = load32(bsums);
  const __m256i h = _mm256_hadd_epi16(v, v);
  for (int k = 0; k < 4; ++k) bp[k] = _mm256_permutevar8x32_epi32(h, _mm256_set1_epi32(k / 2 * 4 + k % 2));
}

BILLION_ALWAYS_INLINE __m256i mins_of(const __m256i* mp, const __m256i* bp) {
  const __m256i lo = _mm256_add_epi32(_mm256_madd_epi16(mp[0], bp[0]), _mm256_madd_epi16(mp[1], bp[1]));
  const __m256i hi = _mm256_add_epi32(_mm256_madd_epi16(mp[2], bp[2]), _mm256_madd_epi16(mp[3], bp[3]));
  return _mm256_add_epi32(lo, hi);
}

// The reference's float expression for one super-block, on 8 lanes: (d·d_a)·dot − (dmin·d_a)·mins.
BILLION_ALWAYS_INLINE __m256 superblock_term(__m256 d, __m256 dmin, float da, __m256i dot, __m256i mins) {
  const __m256 a = _mm256_set1_ps(da);
  return _mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(d, a), _mm256_cvtepi32_ps(dot)),
                       _mm256_mul_ps(_mm256_mul_ps(dmin, a), _mm256_cvtepi32_ps(mins)));
}

BILLION_ALWAYS_INLINE __m256 half_f16(const uint8_t* p, int h) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * h)));
}

// One group (both halves) × T tokens: y[t][0..15] for tokens a[t]. The group's steps are read
// in address order and each activation broadcast serves both halves.
template <int T>
void group_tokens(const uint8_t* group, int64_t nb, const BlockQ8K* const* a, float* const* y) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256 sum[T][2];
  for (int t = 0; t < T; ++t) sum[t][0] = sum[t][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* sb = group + b * kQ4KxBytes;
    __m256i sc[2][2], mn[2][2];
    for (int h = 0; h < 2; ++h) unpack_scales(sb, h, sc[h], mn[h]);
    __m256i dot[T][2];
    for (int t = 0; t < T; ++t) dot[t][0] = dot[t][1] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const uint8_t* steps = sb + kQ4KxQuants + c * 8 * kStep;
      for (int hi = 0; hi < 2; ++hi) {  // low nibbles: sub-block 2c; high nibbles: 2c+1
        const int sub = 2 * c + hi;
        __m256i acc[T][2];  // int16 pair sums of the sub-block (exact: see the top)
        for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int s = 0; s < 8; ++s) {
          __m256i op[2];
          for (int h = 0; h < 2; ++h) {
            const __m256i raw = load32(steps + s * kStep + kHalfBytes * h);
            op[h] = _mm256_and_si256(hi ? _mm256_srli_epi16(raw, 4) : raw, low4);
          }
          for (int t = 0; t < T; ++t) {
            const __m256i q = broadcast4(a[t][b].qs + 32 * sub + 4 * s);
            for (int h = 0; h < 2; ++h) {
              acc[t][h] = _mm256_add_epi16(acc[t][h], _mm256_maddubs_epi16(op[h], q));
              in_register(acc[t][h]);
            }
          }
        }
        for (int h = 0; h < 2; ++h) {
          const __m256i scale = scale_pair(sc[h], sub);
          for (int t = 0; t < T; ++t) dot[t][h] = _mm256_add_epi32(dot[t][h], _mm256_madd_epi16(acc[t][h], scale));
        }
      }
    }
    for (int h = 0; h < 2; ++h) {
      __m256i mp[4];
      min_pairs(mn[h], mp);
      const __m256 d = half_f16(sb, h), dmin = half_f16(sb + kQ4KxDmin, h);
      for (int t = 0; t < T; ++t) {
        __m256i bp[4];
        bsum_pairs(a[t][b].bsums, bp);
        sum[t][h] = _mm256_add_ps(sum[t][h], superblock_term(d, dmin, a[t][b].d, dot[t][h], mins_of(mp, bp)));
      }
    }
  }
  for (int t = 0; t < T; ++t) {
    _mm256_storeu_ps(y[t], sum[t][0]);
    _mm256_storeu_ps(y[t] + 8, sum[t][1]);
  }
}

// One group (both halves) × one token: y[0..15]. Each activation broadcast serves both halves,
// and the group's steps are read in address order, one stream.
void group_one_token(const uint8_t* group, int64_t nb, const BlockQ8K* a, float* y) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256 sum[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* sb = group + b * kQ4KxBytes;
    __m256i sc[2][2], mins[2];
    __m256i bp[4];
    bsum_pairs(a[b].bsums, bp);
    for (int h = 0; h < 2; ++h) {
      __m256i mn[2], mp[4];
      unpack_scales(sb, h, sc[h], mn);
      min_pairs(mn, mp);
      mins[h] = mins_of(mp, bp);
    }
    __m256i dot[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    for (int c = 0; c < 4; ++c) {
      // Each step is loaded once: its low nibbles pair with sub-block 2c, its high ones with 2c+1.
      const uint8_t* steps = sb + kQ4KxQuants + c * 8 * kStep;
      const int8_t* q = a[b].qs + 64 * c;
      __m256i acc[2][2] = {};  // [nibble half][row half]: int16 pair sums (exact: see the top)
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) {
        const __m256i qlo = broadcast4(q + 4 * s), qhi = broadcast4(q + 32 + 4 * s);
        for (int h = 0; h < 2; ++h) {
          const __m256i raw = load32(steps + s * kStep + kHalfBytes * h);
          acc[0][h] = _mm256_add_epi16(acc[0][h], _mm256_maddubs_epi16(_mm256_and_si256(raw, low4), qlo));
          acc[1][h] = _mm256_add_epi16(acc[1][h], _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low4), qhi));
          in_register(acc[0][h]);
          in_register(acc[1][h]);
        }
      }
      for (int h = 0; h < 2; ++h)
        dot[h] = _mm256_add_epi32(dot[h], _mm256_add_epi32(_mm256_madd_epi16(acc[0][h], scale_pair(sc[h], 2 * c)),
                                                           _mm256_madd_epi16(acc[1][h], scale_pair(sc[h], 2 * c + 1))));
    }
    for (int h = 0; h < 2; ++h)
      sum[h] = _mm256_add_ps(sum[h], superblock_term(half_f16(sb, h), half_f16(sb + kQ4KxDmin, h), a[b].d, dot[h], mins[h]));
  }
  _mm256_storeu_ps(y, sum[0]);
  _mm256_storeu_ps(y + 8, sum[1]);
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

void mm_q4_kx16(const uint8_t* w, size_t wrb, int64_t nr, const void* act_v, size_t arb, int64_t nt, float* y,
                int64_t ys, int64_t cols) {
  const auto* act = static_cast<const uint8_t*>(act_v);
  const int64_t nb = cols / kQKK, ng = nr / kInterleaveRows;
  const size_t group_bytes = kInterleaveRows * wrb;
  if (nt == 1) {
    const auto* a = reinterpret_cast<const BlockQ8K*>(act);
    for (int64_t g = 0; g < ng; ++g) group_one_token(w + g * group_bytes, nb, a, y + g * kInterleaveRows);
    return;
  }
  for (int64_t g = 0; g < ng; ++g) {
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
