// AVX2/FMA/F16C matmul tiles (compiled with -mavx2 -mfma -mf16c; called only after the CPU
// check in dispatch.cpp). Same contract and per-block integer arithmetic as matmul_ref.cpp;
// only the float accumulation order differs (8 lanes, summed at the end).
//
// Tiling: a micro-kernel computes R rows × T tokens at once, so each weight block is unpacked
// once for T tokens and each activation block is loaded once for R rows. R=4, T=2 keeps the 8
// accumulators plus operands within the 16 YMM registers; decode (one token) uses R=4, T=1,
// which streams four weight rows side by side. Every (row, token) accumulator goes through the
// same instruction sequence whatever R and T are, so the tile shape never changes a result.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/impl.h"
#include "kernels/interleave.h"

namespace billion::kernels::avx2 {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// 16 packed bytes → 32 bytes: low nibbles (elements 0..15), then high nibbles (16..31).
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// Bit j of the 32-bit little-endian qh → 0x10 in byte j (the fifth bit of Q5 element j).
inline __m256i fifth_bits(const uint8_t* qh_bytes) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  // Byte j takes qh byte j/8, then keeps bit j%8 of it.
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(qh)),
      _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

// 8 int32 partial sums of u[j]*s[j] (u unsigned ≤ 31, s signed |s| ≤ 127: no i16 saturation).
inline __m256i dot_u8_s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// Weight block decoders. `bytes` gives the 32 quants as bytes: signed values (Q8_0, and Q4_0/Q5_0
// with their offset 8/16 subtracted per byte, as ggml's vec_dot does, so every lane holds the
// same integer as ggml's) or unsigned ones (Q4_1/Q5_1, whose minimum term m·s_a follows apart).
struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr bool has_min = false, is_signed = true;
  static __m256i bytes(const Block& b) { return _mm256_sub_epi8(unpack_nibbles(b.qs), _mm256_set1_epi8(8)); }
  static float min(const Block&) { return 0.0f; }
};
struct Q4_1 {
  using Block = BlockQ4_1;
  static constexpr bool has_min = true, is_signed = false;
  static __m256i bytes(const Block& b) { return unpack_nibbles(b.qs); }
  static float min(const Block& b) { return h2f(b.m); }
};
struct Q5_0 {
  using Block = BlockQ5_0;
  static constexpr bool has_min = false, is_signed = true;
  static __m256i bytes(const Block& b) {
    return _mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(b.qs), fifth_bits(b.qh)), _mm256_set1_epi8(16));
  }
  static float min(const Block&) { return 0.0f; }
};
struct Q5_1 {
  using Block = BlockQ5_1;
  static constexpr bool has_min = true, is_signed = false;
  static __m256i bytes(const Block& b) { return _mm256_or_si256(unpack_nibbles(b.qs), fifth_bits(b.qh)); }
  static float min(const Block& b) { return h2f(b.m); }
};
struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr bool has_min = false, is_signed = true;
  static __m256i bytes(const Block& b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)); }
  static float min(const Block&) { return 0.0f; }
};

// R rows × T tokens of a 32-element format against Q8A activations. Per (row, token) this is
// ggml's AVX2 vec_dot: 8 int32 lanes per block, acc += (d_w·d_a) · lanes, then the 8-lane sum,
// plus the separately summed minimum terms for Q4_1/Q5_1.
template <typename F, int R, int T>
inline void micro_q(const uint8_t* w, size_t wrb, const uint8_t* act, size_t arb, float* y,
                    int64_t ys, int64_t nb) {
  using Block = typename F::Block;
  const Block* wb[R];
  const BlockQ8A* ab[T];
  for (int r = 0; r < R; ++r) wb[r] = reinterpret_cast<const Block*>(w + r * wrb);
  for (int t = 0; t < T; ++t) ab[t] = reinterpret_cast<const BlockQ8A*>(act + t * arb);
  __m256 acc[R][T];
  float acc_min[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      acc[r][t] = _mm256_setzero_ps();
      acc_min[r][t] = 0.0f;
    }
  for (int64_t i = 0; i < nb; ++i) {
    __m256i wq[R], wabs[R];
    float dw[R];
    for (int r = 0; r < R; ++r) {
      wq[r] = F::bytes(wb[r][i]);
      if constexpr (F::is_signed) wabs[r] = _mm256_sign_epi8(wq[r], wq[r]);
      dw[r] = h2f(wb[r][i].d);
    }
    for (int t = 0; t < T; ++t) {
      const BlockQ8A& a = ab[t][i];
      const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs));
      for (int r = 0; r < R; ++r) {
        __m256i p;
        if constexpr (F::is_signed)  // signed × signed as |w| × (a with w's sign)
          p = dot_u8_s8(wabs[r], _mm256_sign_epi8(aq, wq[r]));
        else
          p = dot_u8_s8(wq[r], aq);
        acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dw[r] * a.d), _mm256_cvtepi32_ps(p), acc[r][t]);
        if constexpr (F::has_min) acc_min[r][t] += F::min(wb[r][i]) * a.s;
      }
    }
    if (i + 4 < nb)  // a few blocks ahead of the stream: hides DRAM latency for decode
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(&wb[r][i + 4]) + 64, _MM_HINT_T0);
  }
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) y[t * ys + r] = hsum(acc[r][t]) + acc_min[r][t];
}

// Rows in groups of 4 (then singly), tokens in pairs (then singly).
template <typename F>
void mm_quant(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
              float* y, int64_t ys, int64_t cols) {
  const auto* a = static_cast<const uint8_t*>(act);
  const int64_t nb = cols / kQK;
  int64_t r = 0;
  for (; r + 4 <= nr; r += 4) {
    int64_t t = 0;
    for (; t + 2 <= nt; t += 2) micro_q<F, 4, 2>(w + r * wrb, wrb, a + t * arb, arb, y + t * ys + r, ys, nb);
    for (; t < nt; ++t) micro_q<F, 4, 1>(w + r * wrb, wrb, a + t * arb, arb, y + t * ys + r, ys, nb);
  }
  for (; r < nr; ++r) {
    int64_t t = 0;
    for (; t + 2 <= nt; t += 2) micro_q<F, 1, 2>(w + r * wrb, wrb, a + t * arb, arb, y + t * ys + r, ys, nb);
    for (; t < nt; ++t) micro_q<F, 1, 1>(w + r * wrb, wrb, a + t * arb, arb, y + t * ys + r, ys, nb);
  }
}

// Float weights: 8 columns at a time converted to fp32 and FMA'd into 8-lane accumulators; a
// column tail (cols % 8) is added in scalar after the lane sum.
struct F32 {
  using Elem = float;
  static __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
  static float load1(const float* p) { return *p; }
};
struct F16 {
  using Elem = uint16_t;
  static __m256 load8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float load1(const uint16_t* p) { return h2f(*p); }
};
struct BF16 {
  using Elem = uint16_t;
  static __m256 load8(const uint16_t* p) {  // bf16 is the top half of an fp32
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static float load1(const uint16_t* p) { return bf16_to_f32(*p); }
};

// R rows × T tokens of float weights. Per 8 columns the T activation vectors are loaded first and
// each row's converted weights meet all of them, so a 4 × 3 tile fits the 16 YMM registers
// (12 accumulators, 3 activations, 1 weight) and converts each weight once per 3 tokens; the
// 4 × 2 tile it replaced for prefill ran TinyLlama F16 pp512 at 62-63 tok/s against 75-81
// (bench_peer --tests pp512 with BILLION_KERNELS=avx2, two alternations).
//
// X4: the weights are a run of four rows of F16/BF16 in the interleaved layout (interleave.h):
// row r's eight columns from i lie at 4·i + 8·r elements from the run's start, so the tile
// reads one 64-byte line per step instead of four rows apart. Same arithmetic, same bits.
template <typename F, int R, int T, bool X4 = false>
inline void micro_f(const uint8_t* w, size_t wrb, const uint8_t* act, size_t arb, float* y,
                    int64_t ys, int64_t cols) {
  using Elem = typename F::Elem;
  static_assert(!X4 || R == kHalfRunRows, "an interleaved run is four rows");
  const Elem* wr[R];
  const float* xt[T];
  for (int r = 0; r < R; ++r)
    wr[r] = X4 ? reinterpret_cast<const Elem*>(w) + r * kHalfStepCols : reinterpret_cast<const Elem*>(w + r * wrb);
  for (int t = 0; t < T; ++t) xt[t] = reinterpret_cast<const float*>(act + t * arb);
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= cols; i += 8) {
    __m256 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(xt[t] + i);
    for (int r = 0; r < R; ++r) {
      const __m256 wv = F::load8(wr[r] + (X4 ? kHalfRunRows * i : i));
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
    // One stream (X4) needs no help from software prefetch (it did not speed it up); four
    // rows apart do.
    if (!X4 && (i & 31) == 0)
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(wr[r] + i) + 512, _MM_HINT_T0);
  }
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) {
      float tail = 0.0f;  // none when X4 (cols % 8 == 0)
      if constexpr (!X4)
        for (int64_t j = i; j < cols; ++j) tail += F::load1(wr[r] + j) * xt[t][j];
      y[t * ys + r] = hsum(acc[r][t]) + tail;
    }
}

// Rows in groups of 4 (then singly), tokens in threes, then a pair or one.
template <typename F>
void mm_float(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
              float* y, int64_t ys, int64_t cols) {
  const auto* a = static_cast<const uint8_t*>(act);
  int64_t r = 0;
  for (; r + 4 <= nr; r += 4) {
    int64_t t = 0;
    for (; t + 3 <= nt; t += 3) micro_f<F, 4, 3>(w + r * wrb, wrb, a + t * arb, arb, y + t * ys + r, ys, cols);
    for (; t + 2 <= nt; t += 2) micro_f<F, 4, 2>(w + r * wrb, wrb, a + t * arb, arb, y + t * ys + r, ys, cols);
    for (; t < nt; ++t) micro_f<F, 4, 1>(w + r * wrb, wrb, a + t * arb, arb, y + t * ys + r, ys, cols);
  }
  for (; r < nr; ++r) {
    int64_t t = 0;
    for (; t + 2 <= nt; t += 2) micro_f<F, 1, 2>(w + r * wrb, wrb, a + t * arb, arb, y + t * ys + r, ys, cols);
    for (; t < nt; ++t) micro_f<F, 1, 1>(w + r * wrb, wrb, a + t * arb, arb, y + t * ys + r, ys, cols);
  }
}

// Runs of four interleaved rows (n_rows a multiple of 4, cols of 8: can_interleave), tokens as
// mm_float walks them. Run r/4 starts where row r started (interleave.h): at r·wrb.
template <typename F>
void mm_float_x4(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                 int64_t ys, int64_t cols) {
  const auto* a = static_cast<const uint8_t*>(act);
  for (int64_t r = 0; r < nr; r += kHalfRunRows) {
    const uint8_t* run = w + r * wrb;
    int64_t t = 0;
    for (; t + 3 <= nt; t += 3) micro_f<F, 4, 3, true>(run, 0, a + t * arb, arb, y + t * ys + r, ys, cols);
    for (; t + 2 <= nt; t += 2) micro_f<F, 4, 2, true>(run, 0, a + t * arb, arb, y + t * ys + r, ys, cols);
    for (; t < nt; ++t) micro_f<F, 4, 1, true>(run, 0, a + t * arb, arb, y + t * ys + r, ys, cols);
  }
}

}  // namespace

void mm_f16x4(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
              float* y, int64_t ys, int64_t cols) {
  mm_float_x4<F16>(w, wrb, nr, act, arb, nt, y, ys, cols);
}
void mm_bf16x4(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
               float* y, int64_t ys, int64_t cols) {
  mm_float_x4<BF16>(w, wrb, nr, act, arb, nt, y, ys, cols);
}

#define BILLION_MM(name, impl)                                                                  \
  void name(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, \
            float* y, int64_t ys, int64_t cols) {                                               \
    impl(w, wrb, nr, act, arb, nt, y, ys, cols);                                                \
  }
BILLION_MM(mm_f32, mm_float<F32>)
BILLION_MM(mm_f16, mm_float<F16>)
BILLION_MM(mm_bf16, mm_float<BF16>)
BILLION_MM(mm_q8_0, mm_quant<Q8_0>)
BILLION_MM(mm_q4_0, mm_quant<Q4_0>)
BILLION_MM(mm_q4_1, mm_quant<Q4_1>)
BILLION_MM(mm_q5_0, mm_quant<Q5_0>)
BILLION_MM(mm_q5_1, mm_quant<Q5_1>)
#undef BILLION_MM

// Same bytes as quantize_row_q8a_ref: the same float max, scale and product, and
// _mm256_cvtps_epi32 rounds to nearest even under the default MXCSR, like nearbyint; the two
// scales are rounded through fp16 with F16C (nearest even, as f32_to_f16).
void quantize_q8a(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8A*>(out);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(x + 8 * k);
      m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.0f;
    const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], id));
    // Sum of the 32 quants (exact in int32).
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    // Narrow 32 → 16 → 8 bits; the packs work per 128-bit lane, so restore element order.
    const __m256i q01 = _mm256_packs_epi32(q[0], q[1]);
    const __m256i q23 = _mm256_packs_epi32(q[2], q[3]);
    __m256i b = _mm256_packs_epi16(q01, q23);
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), b);
    y[i].d = _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
    y[i].s = _cvtsh_ss(_cvtss_sh(d * static_cast<float>(_mm_cvtsi128_si32(s4)), _MM_FROUND_TO_NEAREST_INT));
  }
}

// Same bytes as quantize_row_q8k_ref for finite inputs: the same signed maximum (the first
// element of the largest magnitude), the same float products, rounding to nearest even as
// nearbyint does under the default MXCSR, the same clamp at 127 and exact int32 group sums.
void quantize_q8k(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8K*>(out);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < kQKK; k += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), m);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    if (amax == 0.0f) {
      y[i] = BlockQ8K{};
      continue;
    }
    int first = 0;
    while (std::fabs(x[first]) != amax) ++first;
    const float iscale = -127.0f / x[first];
    y[i].d = 1.0f / iscale;
    const __m256 is = _mm256_set1_ps(iscale);
    const __m256i top = _mm256_set1_epi32(127);
    for (int g = 0; g < kQKK / 16; ++g) {
      __m256i q[2];
      for (int k = 0; k < 2; ++k)
        q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(x + 16 * g + 8 * k))), top);
      __m256i s = _mm256_add_epi32(q[0], q[1]);
      __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
      y[i].bsums[g] = static_cast<int16_t>(_mm_cvtsi128_si32(s4));
      // 16 int32 → 16 int8 (all in [-127, 127]): packs work per 128-bit lane, so the order
      // comes back with one permute before the low 16 bytes are stored.
      const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xD8);
      const __m128i b = _mm_packs_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16 * g), b);
    }
  }
}

}  // namespace billion::kernels::avx2
