// AVX-512 VNNI tile for Q6_K weights in the interleaved layout (kernels/interleave.h, "Q6_Kx16")
// against Q8K activations: one vector lane per weight row, so no horizontal sums. Bit-identical
// to ref::mm_q6_k on the same rows (the plain layout's reference): per (row, token, super-block)
// the exact integer
//   dot = Σ_j sc_j · isum_j,   isum_j = Σ_{l in sub-block j} (u_l − 32) · a_l
// (u the unsigned 6-bit value; |isum_j| ≤ 16·32·128, |dot| ≤ 16·128·2^16 = 2^27), then the
// reference's float expression sum += (d·d_a)·float(dot), lane by lane.
//
// vpdpbusd wants an unsigned operand, so it multiplies u (0..63), and each isum_j chain starts
// from −32·bsums[j] (bsums[j] = Σ a over sub-block j) instead of zero: the chain ends on the
// reference's isum_j exactly, with no separate offset pass. Per sub-block of 16 elements and 16
// rows: 4 vpdpbusd (a step holds four values of each row; the token's four activation bytes are
// broadcast), one vpmulld by the sub-block's 16 scales (one vpmovsxbd from the layout's
// scale row) and an add. Rebuilding u costs 2.75 logic ops per step and sub-block: a qh step's
// two bit pairs for one ql step masked out together (and a shift for every other qh step), then
// per nibble a shift and one vpternlog that takes bits 0-3 from ql and 4-7 from the pairs.
// Decode is bound by these ops rather than by memory (bench_kernels: ~17 GB/s against Q4_K's 22),
// so they are counted: the first version, which masked each pair alone, took 3.25.
//
// Tiles: one group × up to 8 tokens (the rebuilt values of a sub-block pair stay in registers
// for all of them); decode is the one-token case, prefetching the group's super-block after next
// into L2 (a group's super-blocks are one contiguous stream).
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
constexpr int kSelect = 0xE4;  // vpternlog (a, b, c) → c ? a : b, bit by bit

// Four activation bytes in every lane.
BILLION_ALWAYS_INLINE __m512i broadcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// A group × T tokens: y[t][0..15] for tokens a[t]. The group's super-block b lies at
// group + b·kQ6KxBytes (its steps 64-byte aligned in the loader's buffers; the loads do not
// require it).
template <int T>
void group_tokens(const uint8_t* group, int64_t nb, const BlockQ8K* const* a, float* const* y) {
  const __m512i low4 = _mm512_set1_epi8(0x0F), pairs = _mm512_set1_epi8(0x33);
  __m512 sum[T];
  for (int t = 0; t < T; ++t) sum[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* sb = group + b * kQ6KxBytes;
    // Decode streams the weights from memory: ask for the super-block after next into L2.
    if constexpr (T == 1)
      for (int64_t off = 0; off < kQ6KxBytes + 64; off += 64)
        _mm_prefetch(reinterpret_cast<const char*>(sb + 2 * kQ6KxBytes + off), _MM_HINT_T1);
    const uint8_t* ql = sb + q6_kx_steps(b);
    const uint8_t* qh = ql + kQ6KxQh;
    const uint8_t* scales = ql + kQ6KxScales;
    // Per token, −32·bsums[j]: the start of sub-block j's chains.
    alignas(64) int32_t start[T][16];
    for (int t = 0; t < T; ++t) {
      const __m512i bs = _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t][b].bsums)));
      _mm512_store_si512(start[t], _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(bs, 5)));
    }
    __m512i dot[T];
    for (int t = 0; t < T; ++t) dot[t] = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h)
      for (int c = 0; c < 4; ++c) {
        // Sub-blocks j0 = 8h+c (low nibbles, bit pair c/2) and j1 = j0+4 (high nibbles, pair c/2+2).
        const int j0 = 8 * h + c, j1 = j0 + 4;
        __m512i lo[4], hi[4];
        for (int i = 0; i < 4; ++i) {
          const __m512i l = _mm512_loadu_si512(ql + (16 * h + 4 * c + i) * kStep);
          const __m512i q = _mm512_loadu_si512(qh + (8 * h + 4 * (c % 2) + i) * kStep);
          // m: the low nibble's bit pair at bits 0-1, the high nibble's at 4-5, zeros above each
          // (a 16-bit shift moves bits across bytes; the mask drops them). Shifted left by 4 it
          // puts the low nibble's pair at bits 4-5, and the bits that select takes from it
          // (4-7) are then the pair and zeros.
          const __m512i m = _mm512_and_si512(c / 2 == 0 ? q : _mm512_srli_epi16(q, 2), pairs);
          lo[i] = _mm512_ternarylogic_epi32(l, _mm512_slli_epi16(m, 4), low4, kSelect);
          hi[i] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), m, low4, kSelect);
        }
        const __m512i sc0 = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + 16 * j0)));
        const __m512i sc1 = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + 16 * j1)));
        for (int t = 0; t < T; ++t) {
          const int8_t* x = a[t][b].qs;
          __m512i s0 = _mm512_set1_epi32(start[t][j0]), s1 = _mm512_set1_epi32(start[t][j1]);
          for (int i = 0; i < 4; ++i) {
            s0 = _mm512_dpbusd_epi32(s0, lo[i], broadcast4(x + 16 * j0 + 4 * i));
            s1 = _mm512_dpbusd_epi32(s1, hi[i], broadcast4(x + 16 * j1 + 4 * i));
          }
          dot[t] = _mm512_add_epi32(dot[t], _mm512_add_epi32(_mm512_mullo_epi32(s0, sc0), _mm512_mullo_epi32(s1, sc1)));
        }
      }
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb + q6_kx_d(b))));
    for (int t = 0; t < T; ++t)
      sum[t] = _mm512_add_ps(sum[t], _mm512_mul_ps(_mm512_mul_ps(d, _mm512_set1_ps(a[t][b].d)), _mm512_cvtepi32_ps(dot[t])));
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

void mm_q6_kx16(const uint8_t* w, size_t wrb, int64_t nr, const void* act_v, size_t arb, int64_t nt, float* y,
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
