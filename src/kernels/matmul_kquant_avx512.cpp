// AVX-512 + VNNI matmul tiles for the K-quants (Q4_K, Q5_K, Q6_K) against Q8K activations
// (compiled with -mavx512f/bw/vl/dq/vnni; called only after the CPU check in dispatch.cpp).
// Contract of matmul_ref.cpp, and bit-identical to it: per (row, token, 256-element
// super-block) one exact integer dot product (and one exact minimum/offset integer), then the
// reference's float expression, operation for operation, in the same order.
//
// Integer part, per 128 elements: two vpdpbusd (unsigned weight × signed activation bytes, four
// products per int32 lane: ≤ 4·63·127 < 2^15), vpackssdw of the two (exact: nothing saturates),
// then vpdpwssd with the sub-block scales as int16 (pairs × scale summed into int32 lanes). The
// scales are applied in integer, so one int32 accumulator of 16 lanes carries the whole
// super-block (|sum| < 2^31) and needs one horizontal reduction; four rows' reductions share
// their shuffles (reduce4).
//
// Q4_K/Q5_K: one 64-byte load of qs holds two 32-byte chunks; its low nibbles are sub-blocks
// (2c, 2c+2) and its high nibbles (2c+1, 2c+3). Rather than shuffle the weights of every row,
// the activations are reordered once per call into that order, sub-blocks
// [0, 2, 1, 3, 4, 6, 5, 7] (PrepQ45), with the bsums of each 32-element sub-block pre-added.
// The 6-bit scales/mins of a row are unpacked with a few 32-bit word operations.
// Q6_K: a 64-byte load of ql gives 64 consecutive elements in its low nibbles and the next 64
// in its high nibbles, so the activations are used as they are; the -32 is folded in as
// -32·Σ sc·bsum, as in the AVX2 tiles.
//
// Float part: the reference's per-super-block expression, vectorised over four rows (lanes are
// independent IEEE operations, so each lane equals the scalar expression).
//
// Tiles: decode (one token) 4 rows at a time, prefetching the next 4 rows' weights as it goes
// (decode streams the weights from memory); prefill 4 rows × 3 tokens. A short last group
// repeats its last row or token and drops the duplicate results, so a (row, token) result never
// depends on where it lands.
//
// GCC 12's AVX-512 headers trip -Wuninitialized on their "undefined" pass-through operands (see
// matmul_avx512.cpp); the value is never used.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/impl.h"

// No FMA contraction: the reference rounds every product (see matmul_kquant_avx2.cpp).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace billion::kernels::avx512 {
namespace {

#define BILLION_ALWAYS_INLINE inline __attribute__((always_inline))

// One token's super-block for the Q4_K/Q5_K tiles: qs in the sub-block order of the weight
// registers, the 8 sub-block activation sums (bsums[2s] + bsums[2s+1], ≤ 4064: int16), d.
struct PrepQ45 {
  int8_t qs[256];  // sub-blocks [0, 2, 1, 3, 4, 6, 5, 7], 32 bytes each
  int16_t bsp[8];
  float d;
  float pad[3];
};
static_assert(sizeof(PrepQ45) == 288);

// Register slot j (0..3) of a super-block holds sub-blocks (kSlotSub[j][0] | kSlotSub[j][1]).
constexpr int kSlotSub[4][2] = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};

void prepare_q45(const uint8_t* act, size_t arb, int64_t nt, int64_t nb, PrepQ45* out) {
  for (int64_t t = 0; t < nt; ++t) {
    const auto* a = reinterpret_cast<const BlockQ8K*>(act + t * arb);
    for (int64_t b = 0; b < nb; ++b, ++out) {
      for (int j = 0; j < 4; ++j)
        for (int h = 0; h < 2; ++h) std::memcpy(out->qs + 64 * j + 32 * h, a[b].qs + 32 * kSlotSub[j][h], 32);
      for (int s = 0; s < 8; ++s) out->bsp[s] = static_cast<int16_t>(a[b].bsums[2 * s] + a[b].bsums[2 * s + 1]);
      out->d = a[b].d;
      out->pad[0] = out->pad[1] = out->pad[2] = 0.0f;
    }
  }
}

// vpdpbusd of slot j gives per 128-bit lane L four partial sums (each ≤ 4·31·127 < 2^15) of
// sub-block kSlotSub[j][L / 2]; the slots 2p, 2p+1 pack exactly into int16 (vpackssdw: lane L
// holds slot 2p's four sums, then slot 2p+1's), and one vpdpwssd applies the scales. kQ45Idx[p]
// is the vpshufb control that builds those int16 scales, bytes (sc, 0), from the 8 scale bytes
// broadcast to every 128-bit lane (0x80 gives a zero byte).
struct Q45Idx {
  alignas(64) int8_t v[2][64];
  constexpr Q45Idx() : v{} {
    for (int p = 0; p < 2; ++p)
      for (int i = 0; i < 64; ++i) {
        const int lane = i / 16, k = (i % 16) / 2;
        v[p][i] = i % 2 ? static_cast<int8_t>(-128) : static_cast<int8_t>(kSlotSub[2 * p + (k < 4 ? 0 : 1)][lane / 2]);
      }
  }
};
constexpr Q45Idx kQ45Idx{};

// The 8 scales and 8 mins of a Q4_K/Q5_K super-block (k_scale_min for j = 0..7), one byte each.
BILLION_ALWAYS_INLINE void unpack_scales(const uint8_t* s, uint64_t* sc8, uint64_t* m8) {
  uint32_t u[3];
  std::memcpy(u, s, 12);
  // j < 4: low 6 bits of bytes 0..3 (scales) and 4..7 (mins). j ≥ 4: the low (high) nibble of
  // bytes 8..11 and, as bits 4-5, the top two bits of bytes 0..3 (4..7); the shift by 2 moves
  // them within their byte and the mask drops what crosses from the next byte.
  const uint32_t sc_lo = u[0] & 0x3F3F3F3Fu, m_lo = u[1] & 0x3F3F3F3Fu;
  const uint32_t sc_hi = (u[2] & 0x0F0F0F0Fu) | ((u[0] >> 2) & 0x30303030u);
  const uint32_t m_hi = ((u[2] >> 4) & 0x0F0F0F0Fu) | ((u[1] >> 2) & 0x30303030u);
  *sc8 = sc_lo | (uint64_t{sc_hi} << 32);
  *m8 = m_lo | (uint64_t{m_hi} << 32);
}

// The sums of the four 128-bit lanes of x, as 4 int32.
BILLION_ALWAYS_INLINE __m128i lane_sums(__m512i x) {
  x = _mm512_add_epi32(x, _mm512_shuffle_epi32(x, _MM_PERM_BADC));
  x = _mm512_add_epi32(x, _mm512_shuffle_epi32(x, _MM_PERM_CDAB));
  const __m512i first = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castsi512_si128(_mm512_permutexvar_epi32(first, x));
}
// [Σa, Σb, Σc, Σd] of four 16-lane int32 vectors (exact: the order of integer sums is free).
BILLION_ALWAYS_INLINE __m128i reduce4(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_shuffle_i64x2(a, b, 0x44), _mm512_shuffle_i64x2(a, b, 0xEE));
  const __m512i cd = _mm512_add_epi32(_mm512_shuffle_i64x2(c, d, 0x44), _mm512_shuffle_i64x2(c, d, 0xEE));
  return lane_sums(_mm512_add_epi32(_mm512_shuffle_i64x2(ab, cd, 0x88), _mm512_shuffle_i64x2(ab, cd, 0xDD)));
}
// Σ of 8-lane halves: x01 = [row0 (8) | row1 (8)], x23 likewise → [Σrow0..Σrow3].
BILLION_ALWAYS_INLINE __m128i reduce_halves(__m512i x01, __m512i x23) {
  return lane_sums(_mm512_add_epi32(_mm512_shuffle_i64x2(x01, x23, 0x88), _mm512_shuffle_i64x2(x01, x23, 0xDD)));
}

BILLION_ALWAYS_INLINE __m128 f16x4(uint16_t a, uint16_t b, uint16_t c, uint16_t d) {
  return _mm_cvtph_ps(_mm_setr_epi16(static_cast<short>(a), static_cast<short>(b), static_cast<short>(c),
                                     static_cast<short>(d), 0, 0, 0, 0));
}

BILLION_ALWAYS_INLINE __m512i load64(const void* p) { return _mm512_loadu_si512(p); }

// Decode streams each weight once from memory: while a tile works on block b of its R rows, ask
// for the b-th of nb equal slices of the next R rows (the rows of a tile are consecutive, so
// that is the next tile's weights). A prefetch past the matrix is harmless: it never faults.
// Into L2 (T1): alternating tg64 runs on TinyLlama Q4_K gave 40.3/42.2/42.4 tok/s against
// 35.8/38.1/42.8 with T0, as the interleaved kernels' L2 prefetch did for Q4_0/Q8_0.
BILLION_ALWAYS_INLINE void prefetch_next_tile(const uint8_t* row0, int R, int64_t nb, int64_t b, size_t block_bytes) {
  const uint8_t* next = row0 + static_cast<size_t>(R) * static_cast<size_t>(nb) * block_bytes;
  const size_t slice = static_cast<size_t>(R) * block_bytes;
  for (size_t off = b * slice; off < (b + 1) * slice; off += 64)
    _mm_prefetch(reinterpret_cast<const char*>(next + off), _MM_HINT_T1);
}

// Q4_K (kFive false) / Q5_K: R rows (a multiple of 4) × T tokens. wr: row pointers; ta: the
// tokens' PrepQ45 rows; y[t*ys + r] for r < nrv, t < ntv.
template <bool kFive, int R, int T>
void tile_q45(const uint8_t* const* wr, const PrepQ45* const* ta, int64_t nb, float* y, int64_t ys, int nrv, int ntv) {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  constexpr int G = R / 4;
  const Block* w[R];
  for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const Block*>(wr[r]);
  __m128 sum[T][G];
  for (int t = 0; t < T; ++t)
    for (int g = 0; g < G; ++g) sum[t][g] = _mm_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    if constexpr (T == 1) prefetch_next_tile(wr[0], R, nb, b, sizeof(Block));
    uint64_t sc8[R], m8[R];
    for (int r = 0; r < R; ++r) unpack_scales(w[r][b].scales, &sc8[r], &m8[r]);
    __m512i acc[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_si512();
    for (int p = 0; p < 2; ++p) {  // slots 2p (low nibbles of qs[64p..]) and 2p+1 (high)
      const __m512i ctrl = _mm512_load_si512(kQ45Idx.v[p]);
      __m512i q0[R], q1[R], s[R];
      for (int r = 0; r < R; ++r) {
        const __m512i raw = load64(w[r][b].qs + 64 * p);
        q0[r] = _mm512_and_si512(raw, low4);
        q1[r] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
        if constexpr (kFive) {
          // Bit s of qh[l] is the fifth bit of sub-block s: rotate it to bit 4 of its byte
          // (left by 4 - s, right for s > 4; the mask keeps only that byte's own bit).
          const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[r][b].qh)));
          const __m512i bit = _mm512_set1_epi8(0x10);
          const int x0 = kSlotSub[2 * p][0], y0 = kSlotSub[2 * p][1];
          const int x1 = kSlotSub[2 * p + 1][0], y1 = kSlotSub[2 * p + 1][1];
          const __m512i rot0 =
              _mm512_inserti64x4(_mm512_set1_epi64((4 - x0) & 63), _mm256_set1_epi64x((4 - y0) & 63), 1);
          const __m512i rot1 =
              _mm512_inserti64x4(_mm512_set1_epi64((4 - x1) & 63), _mm256_set1_epi64x((4 - y1) & 63), 1);
          q0[r] = _mm512_or_si512(q0[r], _mm512_and_si512(_mm512_rolv_epi64(qh, rot0), bit));
          q1[r] = _mm512_or_si512(q1[r], _mm512_and_si512(_mm512_rolv_epi64(qh, rot1), bit));
        }
        s[r] = _mm512_shuffle_epi8(_mm512_set1_epi64(static_cast<long long>(sc8[r])), ctrl);
      }
      for (int t = 0; t < T; ++t) {
        const __m512i a0 = load64(ta[t][b].qs + 128 * p), a1 = load64(ta[t][b].qs + 128 * p + 64);
        for (int r = 0; r < R; ++r) {
          const __m512i p0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q0[r], a0);
          const __m512i p1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q1[r], a1);
          acc[r][t] = _mm512_dpwssd_epi32(acc[r][t], _mm512_packs_epi32(p0, p1), s[r]);
        }
      }
    }
    for (int g = 0; g < G; ++g) {
      const Block* const* wg = w + 4 * g;
      // The 8 mins of row 4g + i as int16 in 128-bit lane i.
      const auto m = [&](int i) { return static_cast<long long>(m8[4 * g + i]); };
      const __m512i mrows = _mm512_cvtepu8_epi16(_mm256_set_epi64x(m(3), m(2), m(1), m(0)));
      const __m128 d = f16x4(wg[0][b].d, wg[1][b].d, wg[2][b].d, wg[3][b].d);
      const __m128 dmin = f16x4(wg[0][b].dmin, wg[1][b].dmin, wg[2][b].dmin, wg[3][b].dmin);
      for (int t = 0; t < T; ++t) {
        const __m512i bsp = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ta[t][b].bsp)));
        const __m128i mins = lane_sums(_mm512_madd_epi16(mrows, bsp));
        const __m128i dot = reduce4(acc[4 * g][t], acc[4 * g + 1][t], acc[4 * g + 2][t], acc[4 * g + 3][t]);
        const __m128 ad = _mm_set1_ps(ta[t][b].d);
        // sum += d·d_a·float(dot) − dmin·d_a·float(mins), as the reference evaluates it.
        const __m128 pos = _mm_mul_ps(_mm_mul_ps(d, ad), _mm_cvtepi32_ps(dot));
        const __m128 neg = _mm_mul_ps(_mm_mul_ps(dmin, ad), _mm_cvtepi32_ps(mins));
        sum[t][g] = _mm_add_ps(sum[t][g], _mm_sub_ps(pos, neg));
      }
    }
  }
  for (int t = 0; t < ntv; ++t)
    for (int g = 0; g < G; ++g) {
      alignas(16) float v[4];
      _mm_store_ps(v, sum[t][g]);
      for (int i = 0; i < 4 && 4 * g + i < nrv; ++i) y[t * ys + 4 * g + i] = v[i];
    }
}

// Q6_K: slot j = 2h + k2 covers elements 128h + 64k2 .. +63: the low (k2 = 0) or high nibbles of
// ql[64h..64h+63] with bits 0-1 / 2-3 (k2 = 0) or 4-5 / 6-7 (k2 = 1) of qh[32h..32h+31] for its
// two 32-element halves. vpdpbusd of a slot gives per 128-bit lane L the four partial sums of
// 16-element sub-block 4j + L (each |.| ≤ 4·63·127 < 2^15), so the two slots of one h pack
// exactly into int16 (vpackssdw: lane L holds slot 2h's four sums, then slot 2h+1's) and one
// vpdpwssd applies the scales: int16 k of lane L takes scale 8h + L (k < 4) or 8h + 4 + L.
// It is built by vpshufb from the 16 scale bytes (broadcast to every 128-bit lane) as the byte
// pair (sc, sc), then an arithmetic shift right by 8 sign-extends it; kQ6Idx holds those vpshufb
// byte indices, per h.
struct Q6Idx {
  alignas(64) int8_t v[2][64];
  constexpr Q6Idx() : v{} {
    for (int h = 0; h < 2; ++h)
      for (int i = 0; i < 64; ++i) {
        const int lane = i / 16, k = (i % 16) / 2;
        v[h][i] = static_cast<int8_t>(8 * h + (k < 4 ? lane : 4 + lane));
      }
  }
};
constexpr Q6Idx kQ6Idx{};

template <int R, int T>
void tile_q6(const uint8_t* const* wr, const BlockQ8K* const* ta, int64_t nb, float* y, int64_t ys, int nrv, int ntv) {
  constexpr int G = R / 4;
  const BlockQ6_K* w[R];
  for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const BlockQ6_K*>(wr[r]);
  __m128 sum[T][G];
  for (int t = 0; t < T; ++t)
    for (int g = 0; g < G; ++g) sum[t][g] = _mm_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F), hmask = _mm512_set1_epi8(0x30);
  for (int64_t b = 0; b < nb; ++b) {
    if constexpr (T == 1) prefetch_next_tile(wr[0], R, nb, b, sizeof(BlockQ6_K));
    __m512i sc8[R];  // the 16 int8 scales in every 128-bit lane
    for (int r = 0; r < R; ++r)
      sc8[r] = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[r][b].scales)));
    __m512i acc[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      const __m512i idx = _mm512_load_si512(kQ6Idx.v[h]);
      __m512i q0[R], q1[R], s[R];
      for (int r = 0; r < R; ++r) {
        const __m512i ql = load64(w[r][b].ql + 64 * h);
        const __m256i qh32 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[r][b].qh + 32 * h));
        const __m512i qh = _mm512_broadcast_i64x4(qh32);
        // The two high bits to bits 4-5 of each byte: first half from bits 0-1 (slot 2h) or 4-5
        // (slot 2h+1), second half from bits 2-3 or 6-7; the mask drops bits from other bytes.
        const __m512i hi0 = _mm512_sllv_epi64(qh, _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2));
        const __m512i hi1 = _mm512_srlv_epi64(qh, _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2));
        q0[r] = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_and_si512(hi0, hmask));
        q1[r] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4), _mm512_and_si512(hi1, hmask));
        s[r] = _mm512_srai_epi16(_mm512_shuffle_epi8(sc8[r], idx), 8);
      }
      for (int t = 0; t < T; ++t) {
        const __m512i a0 = load64(ta[t][b].qs + 128 * h), a1 = load64(ta[t][b].qs + 128 * h + 64);
        for (int r = 0; r < R; ++r) {
          const __m512i p0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q0[r], a0);
          const __m512i p1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q1[r], a1);
          acc[r][t] = _mm512_dpwssd_epi32(acc[r][t], _mm512_packs_epi32(p0, p1), s[r]);
        }
      }
    }
    for (int g = 0; g < G; ++g) {
      const BlockQ6_K* const* wg = w + 4 * g;
      // [scales of row 4g (16 int16) | row 4g+1], likewise rows 4g+2, 4g+3.
      const auto sc = [&](int i) { return _mm512_castsi512_si128(sc8[4 * g + i]); };
      const __m512i s01 = _mm512_cvtepi8_epi16(_mm256_setr_m128i(sc(0), sc(1)));
      const __m512i s23 = _mm512_cvtepi8_epi16(_mm256_setr_m128i(sc(2), sc(3)));
      const __m128 d = f16x4(wg[0][b].d, wg[1][b].d, wg[2][b].d, wg[3][b].d);
      for (int t = 0; t < T; ++t) {
        const __m512i bs = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ta[t][b].bsums)));
        const __m128i offs = reduce_halves(_mm512_madd_epi16(s01, bs), _mm512_madd_epi16(s23, bs));
        const __m128i raw = reduce4(acc[4 * g][t], acc[4 * g + 1][t], acc[4 * g + 2][t], acc[4 * g + 3][t]);
        const __m128i dot = _mm_sub_epi32(raw, _mm_slli_epi32(offs, 5));  // Σ sc·(q − 32)·a
        // sum += d·d_a·float(dot), as the reference.
        sum[t][g] = _mm_add_ps(sum[t][g], _mm_mul_ps(_mm_mul_ps(d, _mm_set1_ps(ta[t][b].d)), _mm_cvtepi32_ps(dot)));
      }
    }
  }
  for (int t = 0; t < ntv; ++t)
    for (int g = 0; g < G; ++g) {
      alignas(16) float v[4];
      _mm_store_ps(v, sum[t][g]);
      for (int i = 0; i < 4 && 4 * g + i < nrv; ++i) y[t * ys + 4 * g + i] = v[i];
    }
}

// kKind 4, 5, 6. Tokens: PrepQ45 rows (stride tsb bytes) for 4/5, BlockQ8K rows for 6.
template <int kKind, int R, int T>
BILLION_ALWAYS_INLINE void run(const uint8_t* w, size_t wrb, int64_t nr, int64_t r, const uint8_t* tok, size_t tsb,
                               int64_t nt, int64_t t, float* y, int64_t ys, int64_t nb) {
  const uint8_t* wr[R];
  for (int i = 0; i < R; ++i) wr[i] = w + std::min<int64_t>(r + i, nr - 1) * wrb;
  const uint8_t* ta[T];
  for (int j = 0; j < T; ++j) ta[j] = tok + std::min<int64_t>(t + j, nt - 1) * tsb;
  const int nrv = static_cast<int>(std::min<int64_t>(R, nr - r)), ntv = static_cast<int>(std::min<int64_t>(T, nt - t));
  float* yt = y + t * ys + r;
  if constexpr (kKind == 6) {
    const BlockQ8K* a[T];
    for (int j = 0; j < T; ++j) a[j] = reinterpret_cast<const BlockQ8K*>(ta[j]);
    tile_q6<R, T>(wr, a, nb, yt, ys, nrv, ntv);
  } else {
    const PrepQ45* a[T];
    for (int j = 0; j < T; ++j) a[j] = reinterpret_cast<const PrepQ45*>(ta[j]);
    tile_q45<kKind == 5, R, T>(wr, a, nb, yt, ys, nrv, ntv);
  }
}

template <int kKind>
void mm_kquant(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
               int64_t ys, int64_t cols) {
  const int64_t nb = cols / kQKK;
  const uint8_t* tok = static_cast<const uint8_t*>(act);
  size_t tsb = arb;
  if constexpr (kKind != 6) {
    thread_local std::vector<PrepQ45> prep;  // [nt, nb], reused across calls
    prep.resize(static_cast<size_t>(nt * nb));
    prepare_q45(tok, arb, nt, nb, prep.data());
    tok = reinterpret_cast<const uint8_t*>(prep.data());
    tsb = static_cast<size_t>(nb) * sizeof(PrepQ45);
  }
  if (nt == 1) {  // decode: 4 rows (8 measured slower: the registers no longer suffice)
    for (int64_t r = 0; r < nr; r += 4) run<kKind, 4, 1>(w, wrb, nr, r, tok, tsb, nt, 0, y, ys, nb);
    return;
  }
  // Prefill: 4 rows × 3 tokens, then 2 or 1. 4 × 4 tiles need more than the 32 registers (12
  // for the weights of 4 rows, 16 accumulators); best of 4 at 64 tokens, 4 × 3 ran 6-18% ahead
  // of 4 × 2.
  for (int64_t r = 0; r < nr; r += 4) {
    int64_t t = 0;
    for (; t + 3 <= nt; t += 3) run<kKind, 4, 3>(w, wrb, nr, r, tok, tsb, nt, t, y, ys, nb);
    for (; t + 2 <= nt; t += 2) run<kKind, 4, 2>(w, wrb, nr, r, tok, tsb, nt, t, y, ys, nb);
    for (; t < nt; ++t) run<kKind, 4, 1>(w, wrb, nr, r, tok, tsb, nt, t, y, ys, nb);
  }
}

#undef BILLION_ALWAYS_INLINE

}  // namespace

void mm_q4_k(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
             int64_t ys, int64_t cols) {
  mm_kquant<4>(w, wrb, nr, act, arb, nt, y, ys, cols);
}
void mm_q5_k(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
             int64_t ys, int64_t cols) {
  mm_kquant<5>(w, wrb, nr, act, arb, nt, y, ys, cols);
}
void mm_q6_k(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
             int64_t ys, int64_t cols) {
  mm_kquant<6>(w, wrb, nr, act, arb, nt, y, ys, cols);
}

}  // namespace billion::kernels::avx512
