// Attention of one query token over the F16 KV cache, AVX2/FMA/F16C (kernels.h, attention_f16).
// Bit for bit the reference's arithmetic (ops_ref.cpp): q and the probabilities rounded to f16,
// products of two f16 values exact in float, sums in the AttentionOrder's lanes and trees.
//
// Three paths. head_dim a multiple of 64 (every model we target: 64, 128, 256) takes a fast one
// (attention_64): scores of eight positions through one transposed lane sum, full 16-position
// softmax chunks read in place (probabilities, simd_avx2.h), the value sums in a fixed 64-dim
// register block, their lanes combined eight dims per instruction. With head_dim 64 and several
// query heads of one KV head per call (GQA; the decoder's usual call), attention_group64 does the
// same for up to 8 heads at once, loading and converting each cache row once for all of them.
// Any other head_dim takes the general path (attention_any). The fast paths were written because
// attention was 17 % of a TinyLlama Q4_0 pp512 run (perf, 2026-11-26), ~8x slower per FLOP than
// the matmuls; docs/PERFORMANCE.md "Attention, and the query heads of a KV head together".
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/impl.h"
#include "kernels/simd_avx2.h"

namespace billion::kernels::avx2 {
namespace {

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

// Any head_dim (a multiple of 16 for the tiled order, else it falls back to the vector order's
// lanes with a double tail, as the reference does).
void attention_any(const float* q, int64_t q_stride, int64_t n_q, int64_t head_dim,
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

    probabilities(scratch, n_pos, pv.data());  // the rest of pv stays zero

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

// hsum(v[j]) for eight vectors at once, out lane j = v[j]'s sum in hsum's own tree: per vector
// s_i = v_i + v_{i+4}, then (s_0 + s_2) + (s_1 + s_3). The 128-bit halves pair the vectors up,
// the shuffles do the next two levels for four vectors at a time, a permute restores the order.
inline __m256 hsum8(const __m256 v[8]) {
  __m256 s[4];
  for (int j = 0; j < 4; ++j)  // [v[2j] lanes i + i+4 | v[2j+1] lanes i + i+4]
    s[j] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * j], v[2 * j + 1], 0x20), _mm256_permute2f128_ps(v[2 * j], v[2 * j + 1], 0x31));
  // [s0 + s2, s1 + s3] of v0 and v2 (low half), v1 and v3 (high half); then of v4..v7.
  const __m256 t0 = _mm256_add_ps(_mm256_shuffle_ps(s[0], s[1], 0x44), _mm256_shuffle_ps(s[0], s[1], 0xEE));
  const __m256 t1 = _mm256_add_ps(_mm256_shuffle_ps(s[2], s[3], 0x44), _mm256_shuffle_ps(s[2], s[3], 0xEE));
  // [v0, v2, v4, v6 | v1, v3, v5, v7]
  const __m256 r = _mm256_add_ps(_mm256_shuffle_ps(t0, t1, 0x88), _mm256_shuffle_ps(t0, t1, 0xDD));
  return _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// The eight lanes of q·k[p] whose hsum is ordered_dot_qk's result (head_dim % 64 == 0, so the
// vector order has no double tail: its float sum converted to double and back is unchanged).
template <bool kTiled>
inline __m256 qk_lanes(const float* q, const uint16_t* k, int64_t head_dim) {
  if constexpr (kTiled) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int64_t c = 0; c < head_dim; c += 16) {
      lo = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), load_f16(k + c), lo);
      hi = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 8), load_f16(k + c + 8), hi);
    }
    return _mm256_add_ps(hi, lo);
  } else {
    __m256 a[8];
    for (auto& r : a) r = _mm256_setzero_ps();
    for (int64_t c = 0; c < head_dim; c += 64)
      for (int j = 0; j < 8; ++j) a[j] = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 8 * j), load_f16(k + c + 8 * j), a[j]);
    const __m256 lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
    const __m256 hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
    return _mm256_add_ps(hi, lo);
  }
}

// Eight output dims from the value sums' lanes, lane l's eight sums at acc + l·lane_stride: the
// lanes' tree (ops_ref.cpp tree16; the vector order first adds its four accumulators as
// (a0 + a2) + (a1 + a3)), eight dims per instruction.
template <bool kTiled>
inline void combine_lanes8(const float* acc, int64_t lane_stride, float* o) {
  auto row = [&](int64_t lane) { return _mm256_loadu_ps(acc + lane * lane_stride); };
  __m256 x[16];
  for (int l = 0; l < 16; ++l)
    x[l] = kTiled ? row(l) : _mm256_add_ps(_mm256_add_ps(row(l), row(l + 32)), _mm256_add_ps(row(l + 16), row(l + 48)));
  __m256 t3[8], t6[4];
  for (int l = 0; l < 8; ++l) t3[l] = _mm256_add_ps(x[l + 8], x[l]);
  for (int l = 0; l < 4; ++l) t6[l] = _mm256_add_ps(t3[l + 4], t3[l]);
  _mm256_storeu_ps(o, _mm256_add_ps(_mm256_add_ps(t6[0], t6[2]), _mm256_add_ps(t6[1], t6[3])));
}

template <bool kTiled>
void attention_64(const float* q, int64_t q_stride, int64_t n_q, int64_t head_dim, const uint16_t* k,
                  const uint16_t* v, int64_t kv_stride, int64_t n_pos, float scale, float* out,
                  int64_t out_stride, float* scratch) {
  constexpr int kGroups = kTiled ? 1 : 4;  // 16-lane accumulators per position block
  constexpr int64_t kStride = 16 * kGroups;  // positions between two visits of one lane
  thread_local std::vector<float> qh, pv, acc;
  qh.resize(head_dim);
  pv.resize(n_pos + 8);
  acc.resize(kStride * 64);  // [lane, 64 dims] of one block of output dims
  const __m256 scale_v = _mm256_set1_ps(scale);
  for (int64_t h = 0; h < n_q; ++h) {
    const float* qs = q + h * q_stride;
    for (int64_t i = 0; i < head_dim; i += 8) _mm256_storeu_ps(qh.data() + i, round_f16(_mm256_loadu_ps(qs + i)));

    // Scores, eight positions per lane sum; the last block's missing positions get zero lanes.
    for (int64_t p0 = 0; p0 < n_pos; p0 += 8) {
      const int64_t m = std::min<int64_t>(8, n_pos - p0);
      __m256 lanes[8];
      for (int64_t j = 0; j < 8; ++j)
        lanes[j] = j < m ? qk_lanes<kTiled>(qh.data(), k + (p0 + j) * kv_stride, head_dim) : _mm256_setzero_ps();
      const __m256 s = _mm256_mul_ps(hsum8(lanes), scale_v);
      if (m == 8) {
        _mm256_storeu_ps(scratch + p0, s);
      } else {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, s);
        std::copy(tmp, tmp + m, scratch + p0);
      }
    }

    probabilities(scratch, n_pos, pv.data());

    // out = sum_p pv[p] v[p]: lane p % kStride sums its positions in order (a lane past n_pos
    // stays zero, as the reference's zero padding leaves it), 64 dims in eight registers.
    float* o = out + h * out_stride;
    for (int64_t d0 = 0; d0 < head_dim; d0 += 64) {
      for (int64_t lane = 0; lane < kStride; ++lane) {
        __m256 r[8];
        for (auto& x : r) x = _mm256_setzero_ps();
        for (int64_t pp = lane; pp < n_pos; pp += kStride) {
          const __m256 pw = _mm256_broadcast_ss(&pv[pp]);
          const uint16_t* vp = v + pp * kv_stride + d0;
          for (int c = 0; c < 8; ++c) r[c] = _mm256_fmadd_ps(pw, load_f16(vp + 8 * c), r[c]);
        }
        for (int c = 0; c < 8; ++c) _mm256_storeu_ps(acc.data() + lane * 64 + 8 * c, r[c]);
      }
      for (int c = 0; c < 8; ++c) combine_lanes8<kTiled>(acc.data() + 8 * c, 64, o + d0 + 8 * c);
    }
  }
}

// The lanes of q·k for head_dim 64 from the key row already in registers (qk_lanes' arithmetic).
template <bool kTiled>
inline __m256 qk_lanes64(const float* q, const __m256 kv[8]) {
  if constexpr (kTiled) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int c = 0; c < 8; c += 2) {
      lo = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * c), kv[c], lo);
      hi = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * c + 8), kv[c + 1], hi);
    }
    return _mm256_add_ps(hi, lo);
  } else {
    __m256 a[8];
    for (int j = 0; j < 8; ++j) a[j] = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * j), kv[j], _mm256_setzero_ps());
    const __m256 lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
    const __m256 hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
    return _mm256_add_ps(hi, lo);
  }
}

// NQ query heads of head_dim 64 over one KV head (GQA), each with attention_64's arithmetic, but
// every key and value row is loaded and converted once for all NQ heads instead of once per
// head: the one-head loops read the cache from L2 once per query head, which bounded them.
template <bool kTiled, int NQ>
void attention_group64(const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v, int64_t kv_stride,
                       int64_t n_pos, float scale, float* out, int64_t out_stride) {
  constexpr int64_t kDim = 64;
  constexpr int64_t kStride = kTiled ? 16 : 64;  // value-sum lanes, as attention_64
  // Dim slices of 8 per pass over the values: NQ accumulators each, within 16 registers.
  constexpr int kSlices = NQ <= 2 ? 4 : NQ <= 4 ? 2 : 1;
  const int64_t padded = n_pos + 8;  // the last score block is stored whole
  thread_local std::vector<float> qh, sc, pv, acc;
  qh.resize(NQ * kDim);
  sc.resize(NQ * padded);
  pv.resize(NQ * padded);
  constexpr int64_t kPassFloats = 8 * kSlices;  // one pass's dims
  acc.resize(kStride * NQ * kPassFloats);
  for (int h = 0; h < NQ; ++h)
    for (int64_t i = 0; i < kDim; i += 8) _mm256_storeu_ps(qh.data() + h * kDim + i, round_f16(_mm256_loadu_ps(q + h * q_stride + i)));

  const __m256 scale_v = _mm256_set1_ps(scale);
  for (int64_t p0 = 0; p0 < n_pos; p0 += 8) {
    const int64_t m = std::min<int64_t>(8, n_pos - p0);
    __m256 lanes[NQ][8];
    for (int64_t j = 0; j < 8; ++j) {
      if (j < m) {
        __m256 kv[8];
        for (int c = 0; c < 8; ++c) kv[c] = load_f16(k + (p0 + j) * kv_stride + 8 * c);
        for (int h = 0; h < NQ; ++h) lanes[h][j] = qk_lanes64<kTiled>(qh.data() + h * kDim, kv);
      } else {
        for (int h = 0; h < NQ; ++h) lanes[h][j] = _mm256_setzero_ps();
      }
    }
    for (int h = 0; h < NQ; ++h) _mm256_storeu_ps(sc.data() + h * padded + p0, _mm256_mul_ps(hsum8(lanes[h]), scale_v));
  }
  for (int h = 0; h < NQ; ++h) probabilities(sc.data() + h * padded, n_pos, pv.data() + h * padded);

  for (int c0 = 0; c0 < 8; c0 += kSlices) {
    for (int64_t lane = 0; lane < kStride; ++lane) {
      __m256 r[NQ][kSlices];
      for (int h = 0; h < NQ; ++h)
        for (int c = 0; c < kSlices; ++c) r[h][c] = _mm256_setzero_ps();
      for (int64_t pp = lane; pp < n_pos; pp += kStride) {
        __m256 vv[kSlices];
        for (int c = 0; c < kSlices; ++c) vv[c] = load_f16(v + pp * kv_stride + 8 * (c0 + c));
        for (int h = 0; h < NQ; ++h) {
          const __m256 pw = _mm256_broadcast_ss(&pv[h * padded + pp]);
          for (int c = 0; c < kSlices; ++c) r[h][c] = _mm256_fmadd_ps(pw, vv[c], r[h][c]);
        }
      }
      for (int h = 0; h < NQ; ++h)
        for (int c = 0; c < kSlices; ++c) _mm256_storeu_ps(acc.data() + (lane * NQ + h) * kPassFloats + 8 * c, r[h][c]);
    }
    // acc holds one pass's dims as [lane, head, dims], at most 16 KiB, so the combine reads it
    // from L1 (all 64 dims of eight heads were 128 KiB, and [head, lane] put a lane's eight
    // stores 16 KiB apart, in one L1 set).
    for (int h = 0; h < NQ; ++h)
      for (int c = 0; c < kSlices; ++c)
        combine_lanes8<kTiled>(acc.data() + h * kPassFloats + 8 * c, NQ * kPassFloats, out + h * out_stride + 8 * (c0 + c));
  }
}

template <bool kTiled>
void attention_heads64(const float* q, int64_t q_stride, int64_t n_q, const uint16_t* k, const uint16_t* v,
                       int64_t kv_stride, int64_t n_pos, float scale, float* out, int64_t out_stride) {
  for_each_head_group(n_q, [&](int64_t h, auto heads) {
    attention_group64<kTiled, heads()>(q + h * q_stride, q_stride, k, v, kv_stride, n_pos, scale, out + h * out_stride, out_stride);
  });
}

}  // namespace

void attention_f16(const float* q, int64_t q_stride, int64_t n_q, int64_t head_dim,
                   const uint16_t* k, const uint16_t* v, int64_t kv_stride, int64_t n_pos,
                   float scale, float* out, int64_t out_stride, float* scratch, AttentionOrder order) {
  if (head_dim % 64 != 0 || n_pos <= 0)
    attention_any(q, q_stride, n_q, head_dim, k, v, kv_stride, n_pos, scale, out, out_stride, scratch, order);
  else if (head_dim == 64 && n_q > 1 && order == AttentionOrder::Tiled)
    attention_heads64<true>(q, q_stride, n_q, k, v, kv_stride, n_pos, scale, out, out_stride);
  else if (head_dim == 64 && n_q > 1)
    attention_heads64<false>(q, q_stride, n_q, k, v, kv_stride, n_pos, scale, out, out_stride);
  else if (order == AttentionOrder::Tiled)
    attention_64<true>(q, q_stride, n_q, head_dim, k, v, kv_stride, n_pos, scale, out, out_stride, scratch);
  else
    attention_64<false>(q, q_stride, n_q, head_dim, k, v, kv_stride, n_pos, scale, out, out_stride, scratch);
}

}  // namespace billion::kernels::avx2
