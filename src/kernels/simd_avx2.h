// Small AVX2/FMA/F16C helpers shared by the AVX2 kernel files (ops_avx2.cpp, attention_avx2.cpp)
// and attention_avx512.cpp (which reuses the attention softmax).
// Include only from files compiled with -mavx2 -mfma -mf16c. The helpers sit in an unnamed
// namespace so that each file keeps its own copy, compiled with its own flags (no one-definition
// clash with a file built for another ISA).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace billion::kernels::avx2 {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp_ggml (ops_ref.cpp) for 8 floats, bit for bit: AVX2 has no vscalefps, so 2^n is applied in
// two exact halves (|n| <= 192 keeps both powers normal) and only the last product rounds.
inline __m256 exp_ggml256(__m256 x) {
  const __m256 r = _mm256_set1_ps(0x1.8p23f);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
  const __m256 n = _mm256_sub_ps(z, r);
  const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f), _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                      _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
      u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
  const __m256 big = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), n), _mm256_set1_ps(192.0f), _CMP_GT_OQ);
  const __m256 nc = _mm256_blendv_ps(n, _mm256_setzero_ps(), big);  // keep the integer conversion in range
  const __m256i ni = _mm256_cvtps_epi32(nc);
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  const __m256 res = _mm256_mul_ps(_mm256_mul_ps(j, p1), p2);
  const __m256 alt = _mm256_blendv_ps(_mm256_set1_ps(std::numeric_limits<float>::infinity()), _mm256_setzero_ps(),
                                      _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ));
  return _mm256_blendv_ps(res, alt, big);
}

inline float exp_ggml1(float x) {
  alignas(32) float buf[8] = {x};
  _mm256_store_ps(buf, exp_ggml256(_mm256_load_ps(buf)));
  return buf[0];
}

// The 16 lanes lo (0-7), hi (8-15) summed as _mm512_reduce_add_ps does (ops_ref.cpp tree16).
inline float tree16(__m256 lo, __m256 hi) { return hsum(_mm256_add_ps(hi, lo)); }

inline __m256 round_f16(__m256 x) { return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT)); }
inline __m256 load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// Softmax (ops_ref.cpp softmax_ggml) of the scores s [n_pos] in place, 16 at a time with each
// chunk's tree sum added in double, then the probabilities rounded to f16 into pv [n_pos].
inline void probabilities(float* s, int64_t n_pos, float* pv) {
  __m256 mv = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t p = 0;
  for (; p + 8 <= n_pos; p += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + p));
  float max = hmax(mv);
  for (; p < n_pos; ++p) max = std::fmax(max, s[p]);
  const __m256 maxv = _mm256_set1_ps(max);
  double sum = 0.0;
  for (p = 0; p + 16 <= n_pos; p += 16) {
    const __m256 lo = exp_ggml256(_mm256_sub_ps(_mm256_loadu_ps(s + p), maxv));
    const __m256 hi = exp_ggml256(_mm256_sub_ps(_mm256_loadu_ps(s + p + 8), maxv));
    _mm256_storeu_ps(s + p, lo);
    _mm256_storeu_ps(s + p + 8, hi);
    sum += tree16(lo, hi);
  }
  if (p < n_pos) {  // the last chunk: positions past the window are exp(-inf) = 0
    alignas(32) float e[16];
    const int64_t m = n_pos - p;
    std::copy(s + p, s + n_pos, e);
    const __m256 lo = exp_ggml256(_mm256_sub_ps(_mm256_load_ps(e), maxv));
    const __m256 hi = exp_ggml256(_mm256_sub_ps(_mm256_load_ps(e + 8), maxv));
    _mm256_store_ps(e, lo);
    _mm256_store_ps(e + 8, hi);
    std::fill(e + m, e + 16, 0.0f);
    sum += tree16(_mm256_load_ps(e), _mm256_load_ps(e + 8));
    std::copy(e, e + m, s + p);
  }
  const float inv_f = static_cast<float>(1.0 / sum);
  const __m256 inv = _mm256_set1_ps(inv_f);
  for (p = 0; p + 8 <= n_pos; p += 8) _mm256_storeu_ps(pv + p, round_f16(_mm256_mul_ps(_mm256_loadu_ps(s + p), inv)));
  for (; p < n_pos; ++p) pv[p] = _cvtsh_ss(_cvtss_sh(s[p] * inv_f, _MM_FROUND_TO_NEAREST_INT));
}

// The attention kernels' query heads in groups of up to 8, each group's size a compile-time
// constant for the kernel's register arrays: fn(first head, std::integral_constant<int, n>).
template <typename Fn>
inline void for_each_head_group(int64_t n_q, Fn&& fn) {
  for (int64_t h = 0; h < n_q; h += 8) {
    switch (std::min<int64_t>(8, n_q - h)) {
      case 1: fn(h, std::integral_constant<int, 1>{}); break;
      case 2: fn(h, std::integral_constant<int, 2>{}); break;
      case 3: fn(h, std::integral_constant<int, 3>{}); break;
      case 4: fn(h, std::integral_constant<int, 4>{}); break;
      case 5: fn(h, std::integral_constant<int, 5>{}); break;
      case 6: fn(h, std::integral_constant<int, 6>{}); break;
      case 7: fn(h, std::integral_constant<int, 7>{}); break;
      default: fn(h, std::integral_constant<int, 8>{}); break;
    }
  }
}

}  // namespace
}  // namespace billion::kernels::avx2
