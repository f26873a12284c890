// AVX2 matmul tiles for the K-quants (Q4_K, Q5_K, Q6_K) against Q8K activations (compiled with
// -mavx2 -mfma -mf16c; called only after the CPU check in dispatch.cpp). Contract and
// arithmetic of matmul_ref.cpp: each 256-element super-block gives one exact integer dot product
// (and one integer minimum/offset term), which is then scaled in float exactly as the reference
// scales it — so these tiles are bit-identical to the reference, not merely close.
//
// Tiling as in matmul_avx2.cpp: R rows × T tokens per micro-kernel, each weight chunk unpacked
// once for T tokens and each activation chunk loaded once for R rows.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "core/half.h"
#include "kernels/impl.h"

// No FMA contraction of the per-super-block float scaling: the reference (compiled without FMA)
// rounds each product, and a contraction chosen differently per tile shape would make results
// depend on where a row lands in a tile.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace billion::kernels::avx2 {
namespace {

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Q4_K / Q5_K: sub-block s (32 elements) has a 6-bit scale sc[s] and minimum m[s]; chunk c of
// 64 elements keeps sub-block 2c in the low nibbles of qs[32c..32c+31] and 2c+1 in the high
// ones; Q5_K's fifth bit of element 32s+l is bit s of qh[l].
template <bool kFive, int R, int T>
inline void micro_q45k(const uint8_t* w, size_t wrb, const uint8_t* act, size_t arb, float* y,
                       int64_t ys, int64_t nb) {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  const Block* wb[R];
  const BlockQ8K* ab[T];
  for (int r = 0; r < R; ++r) wb[r] = reinterpret_cast<const Block*>(w + r * wrb);
  for (int t = 0; t < T; ++t) ab[t] = reinterpret_cast<const BlockQ8K*>(act + t * arb);
  float sum[R][T] = {};
  const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < nb; ++i) {
    __m256i isum[R][T];
    int16_t sc[R][8];
    int mins[R][T];
    for (int r = 0; r < R; ++r) {
      uint8_t m8[8];
      for (int s = 0; s < 8; ++s) {
        uint8_t a, b;
        k_scale_min(s, wb[r][i].scales, &a, &b);
        sc[r][s] = a;
        m8[s] = b;
      }
      for (int t = 0; t < T; ++t) {
        isum[r][t] = _mm256_setzero_si256();
        const int16_t* bs = ab[t][i].bsums;
        int m = 0;
        for (int s = 0; s < 8; ++s) m += m8[s] * (bs[2 * s] + bs[2 * s + 1]);
        mins[r][t] = m;
      }
    }
    for (int c = 0; c < 4; ++c) {
      __m256i lo[R], hi[R];
      for (int r = 0; r < R; ++r) {
        const __m256i q = load32(wb[r][i].qs + 32 * c);
        lo[r] = _mm256_and_si256(q, low4);
        hi[r] = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
        if constexpr (kFive) {
          const __m256i qh = load32(wb[r][i].qh);
          // Bit 2c (2c+1) of each byte → 0x10; the 16-bit shifts never carry across bytes
          // because the mask keeps one bit per byte before the left shift.
          lo[r] = _mm256_or_si256(lo[r], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
          hi[r] = _mm256_or_si256(hi[r], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
        }
      }
      for (int t = 0; t < T; ++t) {
        const __m256i alo = load32(ab[t][i].qs + 64 * c), ahi = load32(ab[t][i].qs + 64 * c + 32);
        for (int r = 0; r < R; ++r) {
          // u ≤ 31, |a| ≤ 127: the pair sums fit int16; the 6-bit scale then widens to int32.
          const __m256i plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[r], alo), _mm256_set1_epi16(sc[r][2 * c]));
          const __m256i phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[r], ahi), _mm256_set1_epi16(sc[r][2 * c + 1]));
          isum[r][t] = _mm256_add_epi32(isum[r][t], _mm256_add_epi32(plo, phi));
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const float d = billion::f16_to_f32(wb[r][i].d), dmin = billion::f16_to_f32(wb[r][i].dmin);
      for (int t = 0; t < T; ++t)  // the reference's float expression, term for term
        sum[r][t] += d * ab[t][i].d * static_cast<float>(hsum_i32(isum[r][t])) -
                     dmin * ab[t][i].d * static_cast<float>(mins[r][t]);
    }
  }
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) y[t * ys + r] = sum[r][t];
}

// Q6_K: element 128h + 32k + l (k = 0..3) takes 4 bits from ql[64h + 32(k&1) + l] (low nibble
// for k < 2, high for k ≥ 2) and 2 bits (2k..2k+1) of qh[32h + l]; value q - 32, one int8 scale
// per 16 elements. The -32 is folded in as -32·Σ sc·bsum, so the products stay unsigned×signed.
template <int R, int T>
inline void micro_q6k(const uint8_t* w, size_t wrb, const uint8_t* act, size_t arb, float* y,
                      int64_t ys, int64_t nb) {
  const BlockQ6_K* wb[R];
  const BlockQ8K* ab[T];
  for (int r = 0; r < R; ++r) wb[r] = reinterpret_cast<const BlockQ6_K*>(w + r * wrb);
  for (int t = 0; t < T; ++t) ab[t] = reinterpret_cast<const BlockQ8K*>(act + t * arb);
  float sum[R][T] = {};
  const __m256i low4 = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3);
  for (int64_t i = 0; i < nb; ++i) {
    __m256i isum[R][T];
    int offs[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) {
        isum[r][t] = _mm256_setzero_si256();
        int o = 0;
        for (int s = 0; s < 16; ++s) o += wb[r][i].scales[s] * ab[t][i].bsums[s];
        offs[r][t] = 32 * o;
      }
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 4; ++k) {
        __m256i q[R], scale[R];
        for (int r = 0; r < R; ++r) {
          const __m256i ql = load32(wb[r][i].ql + 64 * h + 32 * (k & 1));
          const __m256i qh = load32(wb[r][i].qh + 32 * h);
          const __m256i l4 = k < 2 ? _mm256_and_si256(ql, low4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), low4);
          const __m256i h2 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), three);
          q[r] = _mm256_or_si256(l4, _mm256_slli_epi16(h2, 4));
          const int8_t* sc = wb[r][i].scales + 8 * h + 2 * k;  // elements 16·(8h+2k) .. +31
          scale[r] = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
        }
        for (int t = 0; t < T; ++t) {
          const __m256i a = load32(ab[t][i].qs + 128 * h + 32 * k);
          for (int r = 0; r < R; ++r)  // u ≤ 63: 2·63·127 fits int16
            isum[r][t] = _mm256_add_epi32(isum[r][t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[r], a), scale[r]));
        }
      }
    for (int r = 0; r < R; ++r) {
      const float d = billion::f16_to_f32(wb[r][i].d);
      for (int t = 0; t < T; ++t)
        sum[r][t] += d * ab[t][i].d * static_cast<float>(int64_t{hsum_i32(isum[r][t])} - offs[r][t]);
    }
  }
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) y[t * ys + r] = sum[r][t];
}

template <int R, int T, typename Kind>
inline void micro(Kind, const uint8_t* w, size_t wrb, const uint8_t* a, size_t arb, float* y, int64_t ys, int64_t nb) {
  if constexpr (Kind::value == 6) micro_q6k<R, T>(w, wrb, a, arb, y, ys, nb);
  else micro_q45k<Kind::value == 5, R, T>(w, wrb, a, arb, y, ys, nb);
}

template <int kKind>
void mm_kquant(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
               float* y, int64_t ys, int64_t cols) {
  using Kind = std::integral_constant<int, kKind>;
  const auto* a = static_cast<const uint8_t*>(act);
  const int64_t nb = cols / kQKK;
  int64_t r = 0;
  for (; r + 4 <= nr; r += 4) {
    int64_t t = 0;
    for (; t + 2 <= nt; t += 2) micro<4, 2>(Kind{}, w + r * wrb, wrb, a + t * arb, arb, y + t * ys + r, ys, nb);
    for (; t < nt; ++t) micro<4, 1>(Kind{}, w + r * wrb, wrb, a + t * arb, arb, y + t * ys + r, ys, nb);
  }
  for (; r < nr; ++r)
    for (int64_t t = 0; t < nt; ++t) micro<1, 1>(Kind{}, w + r * wrb, wrb, a + t * arb, arb, y + t * ys + r, ys, nb);
}

}  // namespace

void mm_q4_k(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  mm_kquant<4>(w, wrb, nr, act, arb, nt, y, ys, cols);
}
void mm_q5_k(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  mm_kquant<5>(w, wrb, nr, act, arb, nt, y, ys, cols);
}
void mm_q6_k(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  mm_kquant<6>(w, wrb, nr, act, arb, nt, y, ys, cols);
}

}  // namespace billion::kernels::avx2
