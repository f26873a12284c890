// AVX-512 + VNNI matmul tiles for the hot 32-element formats: Q8_0, Q4_0 and Q4_1 weights
// against Q8A activations (compiled with -mavx512f/bw/vl/dq/vnni; called only after the CPU
// check in dispatch.cpp). Same contract as matmul_ref.cpp, and bit-identical to the AVX2 tiles
// (matmul_avx2.cpp), which are in turn bit-identical to ggml's AVX2 vec_dot: every (row, token)
// result goes through exactly the AVX2 float sequence, only more of them run at once. That keeps
// our logits equal to llama.cpp's on this path (test_engine_smollm2's DefaultPathAgainstLlamaCpp
// compares them exactly) whichever of the two ISAs the CPU picks.
//
// The AVX2 sequence for one (row, token): per block b, 8 int32 lanes p_b (lane j = Σ of the
// products of bytes 4j..4j+3), then acc8 = fma(d_w·d_a, float(p_b), acc8) in block order, then
// the 8-lane sum in a fixed order (hsum8), plus for Q4_1 the minimum terms m·s, summed apart
// with fma in block order and added last.
//
// Here one ZMM accumulator carries two such 8-lane chains side by side: two tokens of one row
// ("token pairs", prefill) or two rows for one token ("row pairs", decode). vpdpbusd (unsigned
// × signed bytes, groups of 4 summed into int32 lanes) gives both chains' p_b in one
// instruction, 64 multiply-adds, with the same lane grouping as AVX2's maddubs + madd:
//   Q4_1: unsigned nibbles q × a directly.
//   Q4_0: w = q - 8, so Σ w·a = Σ q·a - 8·Σ a: the lane starts at -8·Σa (per token and block,
//         computed once per call for all rows) and vpdpbusd adds Σ q·a.
//   Q8_0: w + 128 is unsigned, so Σ w·a = Σ (w+128)·a - 128·Σ a, the same way.
// All exact int32 sums (|lane| ≤ 4·255·127) equal to AVX2's (whose maddubs never saturates
// here), so every later float operation sees the same operands.
//
// Tiles: token pairs, R=4 rows × TP=4 pairs (16 accumulators + 8 weight registers + a pair's
// operands fit the 32 ZMM registers); row pairs, 2 pairs (4 rows) × 1 token for decode. A lone
// last token or row is paired with itself and half the result dropped.
//
// GCC 12's AVX-512 headers build their "undefined" pass-through operands as `__m512i __Y = __Y;`,
// which -Wall reports as uninitialized at every inlined intrinsic; the value is never used.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/impl.h"

namespace billion::kernels::avx512 {
namespace {

// The tile's accumulators must stay in registers: a step that is not inlined takes them by
// reference through memory.
#define BILLION_ALWAYS_INLINE inline __attribute__((always_inline))

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// The 8-lane sum in AVX2's order (avx2::hsum in matmul_avx2.cpp; must stay the same sequence).
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float sum_low(__m512 v) { return hsum8(_mm512_castps512_ps256(v)); }
inline float sum_high(__m512 v) { return hsum8(_mm512_extractf32x8_ps(v, 1)); }

// Q4 nibbles of one block (16 bytes) → 32 bytes [lo nibbles (elements 0..15), hi (16..31)],
// the element order of the activation block, in both 256-bit halves.
inline __m512i nibbles_dup(const uint8_t* q) {
  __m512i p = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
  p = _mm512_srlv_epi64(p, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));  // 128-bit lanes 1, 3: high nibbles
  return _mm512_and_si512(p, _mm512_set1_epi8(0x0F));
}
// Two blocks' nibbles: q0's 32 bytes in the low half, q1's in the high half.
inline __m512i nibbles_pair(const uint8_t* q0, const uint8_t* q1) {
  __m512i p = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q0)));
  p = _mm512_mask_broadcast_i32x4(p, 0xFF00, _mm_loadu_si128(reinterpret_cast<const __m128i*>(q1)));
  p = _mm512_srlv_epi64(p, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
  return _mm512_and_si512(p, _mm512_set1_epi8(0x0F));
}
inline __m512i load_pair(const void* lo, const void* hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(lo))),
                            _mm256_loadu_si256(static_cast<const __m256i*>(hi)), 1);
}
inline __m512i load_dup(const void* p) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
}
inline __m512 load_pair_ps(const float* lo, const float* hi) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(lo)), _mm256_loadu_ps(hi), 1);
}

// Weight formats: the unsigned vpdpbusd operand of one block in both halves (dup) or of two
// blocks (pair), and the signed offset subtracted from every weight byte.
struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr int offset = 8;
  static constexpr bool has_min = false;
  static __m512i dup(const Block& b) { return nibbles_dup(b.qs); }
  static __m512i pair(const Block& b0, const Block& b1) { return nibbles_pair(b0.qs, b1.qs); }
};
struct Q4_1 {
  using Block = BlockQ4_1;
  static constexpr int offset = 0;
  static constexpr bool has_min = true;
  static __m512i dup(const Block& b) { return nibbles_dup(b.qs); }
  static __m512i pair(const Block& b0, const Block& b1) { return nibbles_pair(b0.qs, b1.qs); }
};
struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr int offset = 128;
  static constexpr bool has_min = false;
  static __m512i flip(__m512i v) { return _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80))); }  // w + 128
  static __m512i dup(const Block& b) { return flip(load_dup(b.qs)); }
  static __m512i pair(const Block& b0, const Block& b1) { return flip(load_pair(b0.qs, b1.qs)); }
};

// Per token and block, prepared once per call for every row group: 16 floats, the lane start
// -offset·Σa of the 8 lanes (int32 bits) in the first 8, the block's activation scale d in the
// last 8. Layout [token][block][16].
template <typename F>
void prepare_tokens(const uint8_t* act, size_t arb, int64_t nt, int64_t nb, float* out) {
  for (int64_t t = 0; t < nt; ++t) {
    const auto* a = reinterpret_cast<const BlockQ8A*>(act + t * arb);
    for (int64_t b = 0; b < nb; ++b, out += 16) {
      __m256i start = _mm256_setzero_si256();
      if constexpr (F::offset != 0) {
        const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs));
        const __m256i sum4 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), aq);
        start = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sum4, F::offset == 8 ? 3 : 7));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), start);
      _mm256_storeu_ps(out + 8, _mm256_set1_ps(a[b].d));
    }
  }
}

// R rows × TP token pairs. wr[r]: row r; ta/tb[j]: the two tokens of pair j (activation rows and
// their prepared operands; tb == ta for a lone token). y[t][r] = the AVX2 result without mins.
template <typename F, int R, int TP>
void tile_token_pairs(const uint8_t* const* wr, const uint8_t* const* ta, const uint8_t* const* tb,
                      const float* const* pa, const float* const* pb, int64_t nb, float* const* ya, float* const* yb) {
  using Block = typename F::Block;
  const Block* w[R];
  for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const Block*>(wr[r]);
  __m512 acc[R][TP];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < TP; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i wq[R];
    __m512 dw[R];
    for (int r = 0; r < R; ++r) {
      wq[r] = F::dup(w[r][b]);
      dw[r] = _mm512_set1_ps(h2f(w[r][b].d));
    }
    for (int j = 0; j < TP; ++j) {
      const auto* a0 = reinterpret_cast<const BlockQ8A*>(ta[j]) + b;
      const auto* a1 = reinterpret_cast<const BlockQ8A*>(tb[j]) + b;
      const __m512i aq = load_pair(a0->qs, a1->qs);
      const __m512i start = load_pair(pa[j] + 16 * b, pb[j] + 16 * b);
      const __m512 da = load_pair_ps(pa[j] + 16 * b + 8, pb[j] + 16 * b + 8);
      for (int r = 0; r < R; ++r) {
        const __m512i p = _mm512_dpbusd_epi32(start, wq[r], aq);
        acc[r][j] = _mm512_fmadd_ps(_mm512_mul_ps(dw[r], da), _mm512_cvtepi32_ps(p), acc[r][j]);
      }
    }
    if (b + 16 < nb)  // ahead of each row's stream (8-16 blocks measured best for decode)
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(&w[r][b + 16]), _MM_HINT_T0);
  }
  for (int j = 0; j < TP; ++j)
    for (int r = 0; r < R; ++r) {
      ya[j][r] = sum_low(acc[r][j]);
      if (yb[j]) yb[j][r] = sum_high(acc[r][j]);
    }
}

// RP row pairs × one token. wa/wb[k]: the two rows of pair k (wb == wa for a lone row); y: the
// token's outputs, y[k][0] and y[k][1] (null: dropped).
template <typename F, int RP>
void tile_row_pairs(const uint8_t* const* wa, const uint8_t* const* wb, const uint8_t* act, const float* prep,
                    int64_t nb, float* const* y0, float* const* y1) {
  using Block = typename F::Block;
  const Block* w0[RP];
  const Block* w1[RP];
  for (int k = 0; k < RP; ++k) {
    w0[k] = reinterpret_cast<const Block*>(wa[k]);
    w1[k] = reinterpret_cast<const Block*>(wb[k]);
  }
  const auto* a = reinterpret_cast<const BlockQ8A*>(act);
  __m512 acc[RP], accm[RP];  // accm: Q4_1's minimum-term chains (lanes 0-7 row a, 8-15 row b)
  for (int k = 0; k < RP; ++k) acc[k] = accm[k] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m512i aq = load_dup(a[b].qs);
    const __m512i start = load_dup(prep + 16 * b);
    const __m512 da = _mm512_castsi512_ps(load_dup(prep + 16 * b + 8));
    for (int k = 0; k < RP; ++k) {
      const __m512i wq = F::pair(w0[k][b], w1[k][b]);
      const __m512 dw = _mm512_insertf32x8(_mm512_set1_ps(h2f(w0[k][b].d)), _mm256_set1_ps(h2f(w1[k][b].d)), 1);
      const __m512i p = _mm512_dpbusd_epi32(start, wq, aq);
      acc[k] = _mm512_fmadd_ps(_mm512_mul_ps(dw, da), _mm512_cvtepi32_ps(p), acc[k]);
      if constexpr (F::has_min) {  // in the weight stream: a separate pass would read it twice
        const __m512 mw = _mm512_insertf32x8(_mm512_set1_ps(h2f(w0[k][b].m)), _mm256_set1_ps(h2f(w1[k][b].m)), 1);
        accm[k] = _mm512_fmadd_ps(mw, _mm512_set1_ps(a[b].s), accm[k]);
      }
    }
    if (b + 16 < nb)
      for (int k = 0; k < RP; ++k) {
        _mm_prefetch(reinterpret_cast<const char*>(&w0[k][b + 16]), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(&w1[k][b + 16]), _MM_HINT_T0);
      }
  }
  for (int k = 0; k < RP; ++k) {
    float m0 = 0.0f, m1 = 0.0f;
    if constexpr (F::has_min) {
      m0 = _mm512_cvtss_f32(accm[k]);
      m1 = _mm512_cvtss_f32(_mm512_shuffle_f32x4(accm[k], accm[k], 2));  // lane 8
    }
    *y0[k] = F::has_min ? sum_low(acc[k]) + m0 : sum_low(acc[k]);
    if (y1[k]) *y1[k] = F::has_min ? sum_high(acc[k]) + m1 : sum_high(acc[k]);
  }
}

// Token pairs for rows [r, r + R), all tokens; a lone last token is paired with itself.
template <typename F, int R, int TP>
BILLION_ALWAYS_INLINE void run_token_pairs(const uint8_t* w, size_t wrb, int64_t r, const uint8_t* act, size_t arb,
                                           const float* prep, int64_t t, int64_t nt, float* y, int64_t ys, int64_t nb) {
  const uint8_t* wr[R];
  for (int i = 0; i < R; ++i) wr[i] = w + (r + i) * wrb;
  const uint8_t *ta[TP], *tb[TP];
  const float *pa[TP], *pb[TP];
  float *ya[TP], *yb[TP];
  for (int j = 0; j < TP; ++j) {
    const int64_t t0 = t + 2 * j, t1 = t0 + 1 < nt ? t0 + 1 : t0;
    ta[j] = act + t0 * arb;
    tb[j] = act + t1 * arb;
    pa[j] = prep + t0 * 16 * nb;
    pb[j] = prep + t1 * 16 * nb;
    ya[j] = y + t0 * ys + r;
    yb[j] = t1 != t0 ? y + t1 * ys + r : nullptr;
  }
  tile_token_pairs<F, R, TP>(wr, ta, tb, pa, pb, nb, ya, yb);
}

// The Q4_1 minimum terms of the token-pair tiles, as AVX2 sums them: per (row, token) an fma
// chain over the blocks from 0, added to the rest last. 16 tokens per vector (each lane its own
// chain, the same sequence); a second pass over the weights' m fields, paid once per 16 tokens.
void add_q4_1_mins(const uint8_t* w, size_t wrb, int64_t nr, const uint8_t* act, size_t arb, int64_t nt, float* y,
                   int64_t ys, int64_t nb) {
  thread_local std::vector<float> s;  // [block][token]: the activation sums, transposed
  s.resize(static_cast<size_t>(nb * nt));
  for (int64_t t = 0; t < nt; ++t) {
    const auto* a = reinterpret_cast<const BlockQ8A*>(act + t * arb);
    for (int64_t b = 0; b < nb; ++b) s[b * nt + t] = a[b].s;
  }
  for (int64_t r = 0; r < nr; ++r) {
    const auto* blk = reinterpret_cast<const BlockQ4_1*>(w + r * wrb);
    for (int64_t t0 = 0; t0 < nt; t0 += 16) {
      const __mmask16 m = nt - t0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (nt - t0)) - 1);
      __m512 acc = _mm512_setzero_ps();
      for (int64_t b = 0; b < nb; ++b)
        acc = _mm512_fmadd_ps(_mm512_set1_ps(h2f(blk[b].m)), _mm512_maskz_loadu_ps(m, &s[b * nt + t0]), acc);
      alignas(64) float mins[16];
      _mm512_store_ps(mins, acc);
      for (int64_t t = t0; t < nt && t < t0 + 16; ++t) y[t * ys + r] += mins[t - t0];
    }
  }
}

template <typename F>
void mm_quant(const uint8_t* w, size_t wrb, int64_t nr, const void* act_v, size_t arb, int64_t nt,
              float* y, int64_t ys, int64_t cols) {
  const auto* act = static_cast<const uint8_t*>(act_v);
  const int64_t nb = cols / kQK;
  // [nt, nb, 16] floats, per thread and reused across calls (no allocation in steady state).
  thread_local std::vector<float> prep;
  prep.resize(static_cast<size_t>(nt * nb * 16));
  prepare_tokens<F>(act, arb, nt, nb, prep.data());

  if (nt >= 2) {  // prefill: token pairs, rows in fours then singly
    int64_t r = 0;
    for (; r + 4 <= nr; r += 4) {
      int64_t t = 0;
      for (; t + 8 <= nt; t += 8) run_token_pairs<F, 4, 4>(w, wrb, r, act, arb, prep.data(), t, nt, y, ys, nb);
      for (; t < nt; t += 2) run_token_pairs<F, 4, 1>(w, wrb, r, act, arb, prep.data(), t, nt, y, ys, nb);
    }
    for (; r < nr; ++r) {
      int64_t t = 0;
      for (; t + 8 <= nt; t += 8) run_token_pairs<F, 1, 4>(w, wrb, r, act, arb, prep.data(), t, nt, y, ys, nb);
      for (; t < nt; t += 2) run_token_pairs<F, 1, 1>(w, wrb, r, act, arb, prep.data(), t, nt, y, ys, nb);
    }
  } else {  // decode: row pairs, two pairs at a time, a lone row paired with itself
    int64_t r = 0;
    for (; r + 4 <= nr; r += 4) {
      const uint8_t* wa[2] = {w + r * wrb, w + (r + 2) * wrb};
      const uint8_t* wb[2] = {w + (r + 1) * wrb, w + (r + 3) * wrb};
      float* y0[2] = {y + r, y + r + 2};
      float* y1[2] = {y + r + 1, y + r + 3};
      tile_row_pairs<F, 2>(wa, wb, act, prep.data(), nb, y0, y1);
    }
    for (; r < nr; r += 2) {
      const bool lone = r + 1 >= nr;
      const uint8_t* wa[1] = {w + r * wrb};
      const uint8_t* wb[1] = {w + (lone ? r : r + 1) * wrb};
      float* y0[1] = {y + r};
      float* y1[1] = {lone ? nullptr : y + r + 1};
      tile_row_pairs<F, 1>(wa, wb, act, prep.data(), nb, y0, y1);
    }
  }
  if constexpr (F::has_min)  // decode's row pairs added them already
    if (nt >= 2) add_q4_1_mins(w, wrb, nr, act, arb, nt, y, ys, nb);
}

#undef BILLION_ALWAYS_INLINE

}  // namespace

void mm_q8_0(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
             int64_t ys, int64_t cols) {
  mm_quant<Q8_0>(w, wrb, nr, act, arb, nt, y, ys, cols);
}
void mm_q4_0(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
             int64_t ys, int64_t cols) {
  mm_quant<Q4_0>(w, wrb, nr, act, arb, nt, y, ys, cols);
}
void mm_q4_1(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
             int64_t ys, int64_t cols) {
  mm_quant<Q4_1>(w, wrb, nr, act, arb, nt, y, ys, cols);
}

}  // namespace billion::kernels::avx512
