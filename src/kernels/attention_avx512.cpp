// Attention over the F16 KV cache with AVX-512 (kernels.h, attention_f16), for head_dim 64, the
// head size of every 1B model we target; other sizes go to the AVX2 version. Bit for bit the
// reference's arithmetic (ops_ref.cpp), as attention_avx2.cpp: ggml's lanes are 16 wide, so here
// one ZMM register holds a position's (or a value lane's) 16 lanes where AVX2 needs two, and
// every tree below is the reference's tree16, lane for lane.
//
// Structure as attention_avx2.cpp's attention_group64: up to 8 query heads of one KV head per
// pass, each key and value row loaded and converted once for all of them; scores of 16 positions
// summed at once (tree16x16); the value sums of one pass over the rows kept as [lane, head, dims]
// and combined 16 output dims per instruction. The softmax is the AVX2 one (simd_avx2.h).

#include "kernels/avx512_intrinsics.h"

#include <algorithm>
#include <vector>

#include "kernels/impl.h"
#include "kernels/simd_avx2.h"

namespace billion::kernels::avx512 {
namespace {

constexpr int64_t kDim = 64;

inline __m512 load16_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 round16_f16(__m512 x) {
  return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// tree16 (ops_ref.cpp) of sixteen vectors at once: out lane i = tree16(v[i]), where per vector
// t3_j = v_{j+8} + v_j, t6_j = t3_{j+4} + t3_j, then (t6_0 + t6_2) + (t6_1 + t6_3).
inline __m512 tree16x16(const __m512 v[16]) {
  __m512 w[8];  // [t3 of v[2j] | t3 of v[2j+1]]
  for (int j = 0; j < 8; ++j)
    w[j] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * j], v[2 * j + 1], 0xEE), _mm512_shuffle_f32x4(v[2 * j], v[2 * j + 1], 0x44));
  __m512 s[4];  // 128-bit lane k of s[j]: t6 of v[4j + k]
  for (int j = 0; j < 4; ++j)
    s[j] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * j], w[2 * j + 1], 0xDD), _mm512_shuffle_f32x4(w[2 * j], w[2 * j + 1], 0x88));
  // Per 128-bit lane: [t6_0 + t6_2, t6_1 + t6_3] of two vectors side by side, then their sums.
  const __m512 t01 = _mm512_add_ps(_mm512_shuffle_ps(s[0], s[1], 0x44), _mm512_shuffle_ps(s[0], s[1], 0xEE));
  const __m512 t23 = _mm512_add_ps(_mm512_shuffle_ps(s[2], s[3], 0x44), _mm512_shuffle_ps(s[2], s[3], 0xEE));
  // Element 4k + m holds v[4m + k]; put v[i] at i.
  const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(t01, t23, 0x88), _mm512_shuffle_ps(t01, t23, 0xDD));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
}

// The 16 lanes of q·k whose tree16 is the reference's ordered_dot (head_dim 64, the key row in
// registers): tiled, one accumulator over the four 16-dim blocks in order; vector, the four
// blocks' products as (a0 + a2) + (a1 + a3).
template <bool kTiled>
inline __m512 qk_lanes(const float* q, const __m512 kv[4]) {
  if constexpr (kTiled) {
    __m512 acc = _mm512_setzero_ps();
    for (int c = 0; c < 4; ++c) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + 16 * c), kv[c], acc);
    return acc;
  } else {
    __m512 a[4];
    for (int c = 0; c < 4; ++c) a[c] = _mm512_fmadd_ps(_mm512_loadu_ps(q + 16 * c), kv[c], _mm512_setzero_ps());
    return _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
  }
}

// Sixteen output dims from 16 value-sum lanes (a lane's sums at acc + l·lane_stride), the lanes'
// tree16 one dim per SIMD lane.
inline void combine_lanes16(const float* acc, int64_t lane_stride, float* o) {
  __m512 t3[8], t6[4];
  for (int l = 0; l < 8; ++l) t3[l] = _mm512_add_ps(_mm512_loadu_ps(acc + (l + 8) * lane_stride), _mm512_loadu_ps(acc + l * lane_stride));
  for (int l = 0; l < 4; ++l) t6[l] = _mm512_add_ps(t3[l + 4], t3[l]);
  _mm512_storeu_ps(o, _mm512_add_ps(_mm512_add_ps(t6[0], t6[2]), _mm512_add_ps(t6[1], t6[3])));
}

// NQ query heads (head_dim 64) over one KV head.
template <bool kTiled, int NQ>
void attention_group(const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v, int64_t kv_stride,
                     int64_t n_pos, float scale, float* out, int64_t out_stride) {
  constexpr int64_t kStride = kTiled ? 16 : 64;  // value-sum lanes: positions between two visits
  // 16-dim slices per pass over the values: NQ accumulators each, within the 32 registers.
  constexpr int kSlices = NQ <= 4 ? 4 : 2;
  constexpr int64_t kPassFloats = 16 * kSlices;
  const int64_t padded = n_pos + 16;  // the last score block is stored whole
  thread_local std::vector<float> qh, sc, pv, acc;
  qh.resize(NQ * kDim);
  sc.resize(NQ * padded);
  pv.resize(NQ * padded);
  acc.resize(16 * NQ * kPassFloats);
  for (int h = 0; h < NQ; ++h)
    for (int64_t i = 0; i < kDim; i += 16)
      _mm512_storeu_ps(qh.data() + h * kDim + i, round16_f16(_mm512_loadu_ps(q + h * q_stride + i)));

  const __m512 scale_v = _mm512_set1_ps(scale);
  for (int64_t p0 = 0; p0 < n_pos; p0 += 16) {
    const int64_t m = std::min<int64_t>(16, n_pos - p0);
    __m512 lanes[NQ][16];
    for (int64_t j = 0; j < 16; ++j) {
      if (j < m) {
        __m512 kv[4];
        for (int c = 0; c < 4; ++c) kv[c] = load16_f16(k + (p0 + j) * kv_stride + 16 * c);
        for (int h = 0; h < NQ; ++h) lanes[h][j] = qk_lanes<kTiled>(qh.data() + h * kDim, kv);
      } else {
        for (int h = 0; h < NQ; ++h) lanes[h][j] = _mm512_setzero_ps();
      }
    }
    for (int h = 0; h < NQ; ++h) _mm512_storeu_ps(sc.data() + h * padded + p0, _mm512_mul_ps(tree16x16(lanes[h]), scale_v));
  }
  for (int h = 0; h < NQ; ++h) avx2::probabilities(sc.data() + h * padded, n_pos, pv.data() + h * padded);

  // The value sums, one pass per kSlices 16-dim slices of the rows. Lane (p mod kStride) sums its
  // positions in order. The vector order's four accumulators of a lane l, lanes l, l+16, l+32
  // and l+48, are computed one after another and combined at once, (a0 + a2) + (a1 + a3), so
  // either order leaves 16 lanes per head in acc ([lane, head, pass dims], 16 KiB at most, in
  // L1: 64 lanes of 8 heads were 32-64 KiB and ran the vector order at 2/3 of AVX2's speed).
  constexpr int kQuads = kTiled ? 1 : 4;
  for (int c0 = 0; c0 < 4; c0 += kSlices) {
    for (int64_t l = 0; l < 16; ++l) {
      __m512 part[kQuads][NQ][kSlices];
      for (int j = 0; j < kQuads; ++j) {
        __m512 (&r)[NQ][kSlices] = part[j];
        for (int h = 0; h < NQ; ++h)
          for (int c = 0; c < kSlices; ++c) r[h][c] = _mm512_setzero_ps();
        for (int64_t pp = l + 16 * j; pp < n_pos; pp += kStride) {
          __m512 vv[kSlices];
          for (int c = 0; c < kSlices; ++c) vv[c] = load16_f16(v + pp * kv_stride + 16 * (c0 + c));
          for (int h = 0; h < NQ; ++h) {
            const __m512 pw = _mm512_set1_ps(pv[h * padded + pp]);
            for (int c = 0; c < kSlices; ++c) r[h][c] = _mm512_fmadd_ps(pw, vv[c], r[h][c]);
          }
        }
      }
      for (int h = 0; h < NQ; ++h)
        for (int c = 0; c < kSlices; ++c) {
          __m512 x = part[0][h][c];
          if constexpr (!kTiled) x = _mm512_add_ps(_mm512_add_ps(x, part[2][h][c]), _mm512_add_ps(part[1][h][c], part[3][h][c]));
          _mm512_storeu_ps(acc.data() + (l * NQ + h) * kPassFloats + 16 * c, x);
        }
    }
    for (int h = 0; h < NQ; ++h)
      for (int c = 0; c < kSlices; ++c)
        combine_lanes16(acc.data() + h * kPassFloats + 16 * c, NQ * kPassFloats, out + h * out_stride + 16 * (c0 + c));
  }
}

template <bool kTiled>
void attention_heads(const float* q, int64_t q_stride, int64_t n_q, const uint16_t* k, const uint16_t* v,
                     int64_t kv_stride, int64_t n_pos, float scale, float* out, int64_t out_stride) {
  avx2::for_each_head_group(n_q, [&](int64_t h, auto heads) {
    attention_group<kTiled, heads()>(q + h * q_stride, q_stride, k, v, kv_stride, n_pos, scale, out + h * out_stride, out_stride);
  });
}

}  // namespace

void attention_f16(const float* q, int64_t q_stride, int64_t n_q, int64_t head_dim,
                   const uint16_t* k, const uint16_t* v, int64_t kv_stride, int64_t n_pos,
                   float scale, float* out, int64_t out_stride, float* scratch, AttentionOrder order) {
  if (head_dim != kDim || n_pos <= 0)
    avx2::attention_f16(q, q_stride, n_q, head_dim, k, v, kv_stride, n_pos, scale, out, out_stride, scratch, order);
  else if (order == AttentionOrder::Tiled)
    attention_heads<true>(q, q_stride, n_q, k, v, kv_stride, n_pos, scale, out, out_stride);
  else
    attention_heads<false>(q, q_stride, n_q, k, v, kv_stride, n_pos, scale, out, out_stride);
}

}  // namespace billion::kernels::avx512
