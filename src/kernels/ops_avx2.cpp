// AVX2/FMA/F16C versions of the small ops that a decode step spends measurable time in:
// norms, softmax, SwiGLU, residual add, f16 rows and attention over the F16 KV cache.
// (layernorm, gelu and rope stay scalar: a small share of a step; see impl.h.)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/half.h"
#include "kernels/impl.h"

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

// e^x for 8 floats, within ~2 ulp of std::exp on [-87.3, 88.37]. x = n·ln2 + r with
// |r| ≤ ln2/2; e^r by its degree-7 Taylor polynomial (truncation r^8/8! < 6e-9, under float
// epsilon); 2^n written into the exponent bits. Below -87.3 (where 2^n would be subnormal) the
// result is 0 (so a masked -inf gives 0); above 127.5·ln2 it saturates at about 2.4e38.
inline __m256 exp256(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3f);
  const __m256 below = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.37626f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln2 split in two so that n·ln2_hi is exact and r keeps its low bits.
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 result = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
  return _mm256_andnot_ps(below, result);
}

inline float exp1(float x) {  // the same approximation for a tail element
  alignas(32) float buf[8] = {x};
  _mm256_store_ps(buf, exp256(_mm256_load_ps(buf)));
  return buf[0];
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

// q (already f16-rounded floats) · k (f16) in the given order; see ops_ref.cpp ordered_dot.
float ordered_dot_qk(const float* q, const uint16_t* k, int64_t n, AttentionOrder order) {
  if (order == AttentionOrder::Tiled && n % 16 == 0) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int64_t c = 0; c < n; c += 16) {
      lo = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), load_f16(k + c), lo);  // exact products: fma = mul + add
      hi = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 8), load_f16(k + c + 8), hi);
    }
    return tree16(lo, hi);
  }
  __m256 a[8];
  for (auto& r : a) r = _mm256_setzero_ps();
  const int64_t blocked = n / 64 * 64;
  for (int64_t c = 0; c < blocked; c += 64)
    for (int j = 0; j < 8; ++j) a[j] = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 8 * j), load_f16(k + c + 8 * j), a[j]);
  // a[2j], a[2j+1]: accumulator j's lanes 0-7 and 8-15; (a0 + a2) + (a1 + a3) per lane.
  const __m256 lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
  const __m256 hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
  double sum = tree16(lo, hi);
  for (int64_t i = blocked; i < n; ++i) sum += static_cast<double>(q[i] * _cvtsh_ss(k[i]));
  return static_cast<float>(sum);
}

}  // namespace

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  // As the reference (ggml's order): a sequential double sum of float squares; it costs ~1 us per
  // row of 2048, small next to the matmuls that follow.
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(ss / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  const __m256 sv = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sv), _mm256_loadu_ps(w + i)));
  for (; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void softmax(float* x, int64_t n) {
  __m256 mv = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
  float max = hmax(mv);
  for (; i < n; ++i) max = std::fmax(max, x[i]);
  if (max == -std::numeric_limits<float>::infinity()) {
    for (i = 0; i < n; ++i) x[i] = 0.0f;
    return;
  }
  const __m256 maxv = _mm256_set1_ps(max);
  __m256 sv = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), maxv));
    _mm256_storeu_ps(x + i, e);
    sv = _mm256_add_ps(sv, e);
  }
  float sum = hsum(sv);
  for (; i < n; ++i) {
    x[i] = exp1(x[i] - max);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  const __m256 iv = _mm256_set1_ps(inv);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), iv));
  for (; i < n; ++i) x[i] *= inv;
}

void silu_mul(const float* gate, const float* up, float* y, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp_ggml256(_mm256_sub_ps(_mm256_setzero_ps(), g));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) y[i] = gate[i] / (1.0f + exp_ggml1(0.0f - gate[i])) * up[i];
}

void add(const float* a, const float* b, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) y[i] = a[i] + b[i];
}

void f32_to_f16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) y[i] = billion::f32_to_f16(x[i]);
}

void f16_to_f32(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  for (; i < n; ++i) y[i] = billion::f16_to_f32(x[i]);
}

void attention_f16(const float* q, int64_t q_stride, int64_t n_q, int64_t head_dim,
                   const uint16_t* k, const uint16_t* v, int64_t kv_stride, int64_t n_pos,
                   float scale, float* out, int64_t out_stride, float* scratch, AttentionOrder order) {
  // Bit for bit the reference's arithmetic (ops_ref.cpp): q and the probabilities rounded to f16,
  // sums in the AttentionOrder's lanes.
  const bool tiled = order == AttentionOrder::Tiled;
  const int groups = tiled ? 1 : 4;         // accumulators per 16 lanes
  const int64_t stride = 16 * groups;       // positions between two visits of one lane
  thread_local std::vector<float> qh, pv, acc;
  qh.resize(head_dim + 8);
  pv.assign(n_pos + stride, 0.0f);
  acc.resize(size_t(stride) * 64);          // [lane, 64 dims] for one block of output dims
  for (int64_t h = 0; h < n_q; ++h) {
    const float* qs = q + h * q_stride;
    int64_t i = 0;
    for (; i + 8 <= head_dim; i += 8) _mm256_storeu_ps(qh.data() + i, round_f16(_mm256_loadu_ps(qs + i)));
    for (; i < head_dim; ++i) qh[i] = _cvtsh_ss(_cvtss_sh(qs[i], _MM_FROUND_TO_NEAREST_INT));
    for (int64_t p = 0; p < n_pos; ++p) scratch[p] = ordered_dot_qk(qh.data(), k + p * kv_stride, head_dim, order) * scale;

    // softmax (ops_ref.cpp softmax_ggml): 16 at a time, each group's tree sum added in double.
    __m256 mv = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    int64_t p = 0;
    for (; p + 8 <= n_pos; p += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(scratch + p));
    float max = hmax(mv);
    for (; p < n_pos; ++p) max = std::fmax(max, scratch[p]);
    const __m256 maxv = _mm256_set1_ps(max);
    double sum = 0.0;
    for (p = 0; p < n_pos; p += 16) {
      alignas(32) float e[16] = {};
      const int64_t m = std::min<int64_t>(16, n_pos - p);
      for (int64_t t = 0; t < m; ++t) e[t] = scratch[p + t];
      __m256 lo = exp_ggml256(_mm256_sub_ps(_mm256_load_ps(e), maxv));
      __m256 hi = exp_ggml256(_mm256_sub_ps(_mm256_load_ps(e + 8), maxv));
      _mm256_store_ps(e, lo);
      _mm256_store_ps(e + 8, hi);
      for (int64_t t = m; t < 16; ++t) e[t] = 0.0f;  // positions past the window: exp(-inf) = 0
      sum += tree16(_mm256_load_ps(e), _mm256_load_ps(e + 8));
      for (int64_t t = 0; t < m; ++t) scratch[p + t] = e[t];
    }
    const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / sum));
    for (p = 0; p + 8 <= n_pos; p += 8) _mm256_storeu_ps(pv.data() + p, round_f16(_mm256_mul_ps(_mm256_loadu_ps(scratch + p), inv)));
    for (; p < n_pos; ++p)
      pv[p] = _cvtsh_ss(_cvtss_sh(scratch[p] * static_cast<float>(1.0 / sum), _MM_FROUND_TO_NEAREST_INT));

    // out = Σ_p pv[p] v[p]: lane (p / 16 % groups, p % 16) sums its positions in order, then the
    // lanes combine as in ordered_dot. Output dims in blocks of 64 (8 registers).
    float* o = out + h * out_stride;
    for (int64_t d0 = 0; d0 < head_dim; d0 += 64) {
      const int64_t w = std::min<int64_t>(64, head_dim - d0), wv = w / 8;
      for (int64_t lane = 0; lane < stride; ++lane) {
        __m256 r[8];
        for (auto& x : r) x = _mm256_setzero_ps();
        float tail[8] = {};
        for (int64_t pp = lane; pp < n_pos; pp += stride) {
          const __m256 pw = _mm256_set1_ps(pv[pp]);
          const uint16_t* vp = v + pp * kv_stride + d0;
          for (int64_t c = 0; c < wv; ++c) r[c] = _mm256_fmadd_ps(pw, load_f16(vp + 8 * c), r[c]);
          for (int64_t t = wv * 8; t < w; ++t) tail[t - wv * 8] += pv[pp] * _cvtsh_ss(vp[t]);
        }
        float* a = acc.data() + lane * 64;
        for (int64_t c = 0; c < wv; ++c) _mm256_storeu_ps(a + 8 * c, r[c]);
        for (int64_t t = wv * 8; t < w; ++t) a[t] = tail[t - wv * 8];
      }
      // Combine: lane l of group j is acc row j*16 + l.
      for (int64_t t = 0; t < w; ++t) {
        float x[16];
        for (int l = 0; l < 16; ++l) {
          const float* a = acc.data() + l * 64 + t;
          x[l] = tiled ? a[0] : (a[0] + a[2 * 16 * 64]) + (a[16 * 64] + a[3 * 16 * 64]);
        }
        float t3[8], t6[4];
        for (int l = 0; l < 8; ++l) t3[l] = x[l + 8] + x[l];
        for (int l = 0; l < 4; ++l) t6[l] = t3[l + 4] + t3[l];
        o[d0 + t] = (t6[0] + t6[2]) + (t6[1] + t6[3]);
      }
    }
  }
}

}  // namespace billion::kernels::avx2
