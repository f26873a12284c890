// AVX-512 VNNI tile for Q4_K weights in the interleaved layout (kernels/interleave.h, "Q4_Kx16")
// against Q8K activations: one vector lane per weight row, so no horizontal sums. Bit-identical
// to ref::mm_q4_k on the same rows (the plain layout's reference): per (row, token, super-block)
// the exact integers
//   dot  = Σ_j sc_j · Σ_{l in sub-block j} q_l · a_l      (|dot| < 8·63·32·15·127 < 2^31)
//   mins = Σ_j m_j · (bsums[2j] + bsums[2j+1])
// then the reference's float expression sum += (d·d_a)·dot − (dmin·d_a)·mins, lane by lane.
//
// Per sub-block of 32 elements and 16 rows: 8 vpdpbusd (a step holds four nibbles of each row;
// the token's four activation bytes are broadcast), one vpmulld by the 16 rows' scales and an
// add; the mins cost 8 vpdpwssd per super-block (int16 pairs (m_j, m_j) against the bsums words
// (bsums[2j], bsums[2j+1])). The 6-bit scales and mins of all 16 rows unpack with a few 32-bit
// lane operations per super-block, and a vpshufb picks sub-block j's byte from every lane.
//
// Tiles: one group × up to 8 tokens (the group's unpacked nibbles of a sub-block stay in
// registers for all of them); decode is the one-token case. A group's super-blocks are one
// contiguous stream; decode prefetched the super-block after next into L2, which with the weights
// in 2 MiB pages the hardware prefetcher does as well or better: one core read TinyLlama's Q4_K
// shapes at 20-29 GB/s without it against 21-28 with it here, and the AVX2 tile 22-30 against
// 20-26 (bench_kernels --types Q4_K --tokens 1, three alternations; two cores at the ~35 GB/s
// roof either way). Q6_K keeps its prefetch: without, its decode tiles read half as fast.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12's AVX-512 headers (see matmul_avx512.cpp)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
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

namespace billion::kernels::avx512 {
namespace {

#define BILLION_ALWAYS_INLINE inline __attribute__((always_inline))

constexpr int64_t kStep = kInterleaveStepBytes;

// vpshufb controls (per 128-bit lane) that pick byte j of every 32-bit lane: as an int32
// (byte[j]: bytes j, 0, 0, 0) and as the int16 pair (pair[j]: bytes j, 0, j, 0).
struct ByteControls {
  alignas(64) int8_t byte[4][64];
  alignas(64) int8_t pair[4][64];
  constexpr ByteControls() : byte{}, pair{} {
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 64; ++i) {
        const int8_t src = static_cast<int8_t>((i % 16) / 4 * 4 + j), zero = -128;  // 0x80: a zero byte
        byte[j][i] = i % 4 == 0 ? src : zero;
        pair[j][i] = i % 2 == 0 ? src : zero;
      }
  }
};
constexpr ByteControls kControls{};

// The 16 rows' 6-bit scales (sc[0]: sub-blocks 0-3, sc[1]: 4-7, one byte each per 32-bit lane)
// and mins (m[0], m[1]) of a super-block, from its three scale steps: the bit layout of
// k_scale_min (quant.h) done on all lanes at once.
BILLION_ALWAYS_INLINE void unpack_scales(const uint8_t* sb, __m512i* sc, __m512i* m) {
  const __m512i u0 = _mm512_loadu_si512(sb + kQ4KxScales);
  const __m512i u1 = _mm512_loadu_si512(sb + kQ4KxScales + kStep);
  const __m512i u2 = _mm512_loadu_si512(sb + kQ4KxScales + 2 * kStep);
  const __m512i six = _mm512_set1_epi8(0x3F), four = _mm512_set1_epi8(0x0F), top = _mm512_set1_epi8(0x30);
  sc[0] = _mm512_and_si512(u0, six);
  m[0] = _mm512_and_si512(u1, six);
  // Sub-blocks 4-7: the low (high) nibble of word 2 and, as bits 4-5, bits 6-7 of word 0 (1);
  // the 32-bit shifts move bits across bytes, which the masks drop.
  sc[1] = _mm512_or_si512(_mm512_and_si512(u2, four), _mm512_and_si512(_mm512_srli_epi32(u0, 2), top));
  m[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), four), _mm512_and_si512(_mm512_srli_epi32(u1, 2), top));
}

// Four activation bytes in every lane.
BILLION_ALWAYS_INLINE __m512i broadcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// A group × T tokens: y[t][0..15] for tokens a[t]. The group's super-block b lies at
// group + b·kQ4KxBytes (64-byte aligned in the loader's buffers; the loads do not require it).
template <int T>
void group_tokens(const uint8_t* group, int64_t nb, const BlockQ8K* const* a, float* const* y) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 sum[T];
  for (int t = 0; t < T; ++t) sum[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* sb = group + b * kQ4KxBytes;
    __m512i sc[2], mn[2];
    unpack_scales(sb, sc, mn);
    __m512i dot[T];
    for (int t = 0; t < T; ++t) dot[t] = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      const uint8_t* steps = sb + kQ4KxQuants + c * 8 * kStep;
      for (int h = 0; h < 2; ++h) {  // low nibbles: sub-block 2c; high nibbles: 2c+1
        const int sub = 2 * c + h;
        __m512i op[8];
        for (int s = 0; s < 8; ++s) {
          const __m512i raw = _mm512_loadu_si512(steps + s * kStep);
          op[s] = _mm512_and_si512(h ? _mm512_srli_epi16(raw, 4) : raw, low4);
        }
        const __m512i scale = _mm512_shuffle_epi8(sc[sub / 4], _mm512_load_si512(kControls.byte[sub % 4]));
        for (int t = 0; t < T; ++t) {
          const int8_t* q = a[t][b].qs + 32 * sub;
          __m512i isum;
          if constexpr (T == 1) {  // decode: two chains, so the dependent vpdpbusd latencies overlap
            __m512i even = _mm512_setzero_si512(), odd = _mm512_setzero_si512();
            for (int s = 0; s < 8; s += 2) {
              even = _mm512_dpbusd_epi32(even, op[s], broadcast4(q + 4 * s));
              odd = _mm512_dpbusd_epi32(odd, op[s + 1], broadcast4(q + 4 * s + 4));
            }
            isum = _mm512_add_epi32(even, odd);
          } else {
            isum = _mm512_setzero_si512();
            for (int s = 0; s < 8; ++s) isum = _mm512_dpbusd_epi32(isum, op[s], broadcast4(q + 4 * s));
          }
          dot[t] = _mm512_add_epi32(dot[t], _mm512_mullo_epi32(isum, scale));
        }
      }
    }
    __m512i mp[8];
    for (int j = 0; j < 8; ++j) mp[j] = _mm512_shuffle_epi8(mn[j / 4], _mm512_load_si512(kControls.pair[j % 4]));
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb)));
    const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb + kQ4KxDmin)));
    for (int t = 0; t < T; ++t) {
      __m512i mins = _mm512_setzero_si512();
      for (int j = 0; j < 8; ++j) mins = _mm512_dpwssd_epi32(mins, mp[j], broadcast4(a[t][b].bsums + 2 * j));
      const __m512 da = _mm512_set1_ps(a[t][b].d);
      const __m512 term = _mm512_sub_ps(_mm512_mul_ps(_mm512_mul_ps(d, da), _mm512_cvtepi32_ps(dot[t])),
                                        _mm512_mul_ps(_mm512_mul_ps(dmin, da), _mm512_cvtepi32_ps(mins)));
      sum[t] = _mm512_add_ps(sum[t], term);
    }
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(y[t], sum[t]);
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
  const int64_t nb = cols / kQKK;
  const size_t group_bytes = kInterleaveRows * wrb;
  for (int64_t g = 0; g < nr / kInterleaveRows; ++g) {
    const uint8_t* group = w + g * group_bytes;
    float* yg = y + g * kInterleaveRows;
    int64_t t = 0;
    for (; t + 8 <= nt; t += 8) run_group<8>(group, nb, act, arb, t, yg, ys);
    switch (nt - t) {
      case 7: run_group<7>(group, nb, act, arb, t, yg, ys); break;
      case 6: run_group<6>(group, nb, act, arb, t, yg, ys); break;
      case 5: run_group<5>(group, nb, act, arb, t, yg, ys); break;
      case 4: run_group<4>(group, nb, act, arb, t, yg, ys); break;
      case 3: run_group<3>(group, nb, act, arb, t, yg, ys); break;
      case 2: run_group<2>(group, nb, act, arb, t, yg, ys); break;
      case 1: run_group<1>(group, nb, act, arb, t, yg, ys); break;
      default: break;
    }
  }
}

}  // namespace billion::kernels::avx512
