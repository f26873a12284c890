// AVX-512 VNNI tiles for Q4_0 and Q8_0 weights in the interleaved layout (kernels/interleave.h):
// one vector lane per weight row. A 64-byte load holds four quant bytes of each of 16 rows, so
// one vpdpbusd against the token's four activation bytes (broadcast) adds four products to all
// 16 rows' integer sums; a block costs 8 vpdpbusd, one int→float conversion and one fma per 16
// (row, token) outputs — the plain-layout tiles (matmul_avx512.cpp) need a conversion, a
// multiply and an fma per 2 outputs to keep ggml's eight-lane float order. No horizontal sums:
// lane i is output row i. Bit-identical to ref::mm_q4_0x16 / mm_q8_0x16: the integer sums are
// exact, and each lane computes fma(float(isum), d_w·d_a, acc) in block order, as they do.
//
// vpdpbusd multiplies unsigned by signed bytes, so the weights enter unsigned with a per-block
// correction: Q4_0's nibbles q are w + 8, Q8_0's bytes xor 0x80 are w + 128, and
// Σ w·a = Σ u·a - offset·Σa: each block's sum starts at -offset·Σa, from the block sums the
// matmul driver writes after each activation row (q8a_block_sums).
//
// Tiles: prefill, one group × up to 8 tokens (the group's 8 unpacked weight operands stay in
// registers for all of them); decode, a layout tile (up to four groups) × one token, each group's
// sum split into two chains so the dependent vpdpbusd latencies overlap, which reads the matrix
// front to back in one stream (interleave.h).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12's AVX-512 headers (see matmul_avx512.cpp)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/impl.h"
#include "kernels/interleave.h"

namespace billion::kernels::avx512 {
namespace {

#define BILLION_ALWAYS_INLINE inline __attribute__((always_inline))

constexpr int64_t kStepBytes = kInterleaveStepBytes;
constexpr int64_t kBlockScaleBytes = kInterleaveRows * 2;  // a block of 16 rows' fp16 scales

// The 8 unsigned vpdpbusd operands of one block (operand k pairs with activation bytes
// 4k..4k+3) from its quant steps q.
struct Q4_0 {
  static constexpr GgmlType type = GgmlType::Q4_0;
  static constexpr int64_t block_bytes = 4 * kStepBytes;
  static constexpr int offset = 8;
  static BILLION_ALWAYS_INLINE void operands(const uint8_t* q, __m512i* op) {
    const __m512i mask = _mm512_set1_epi8(0x0F);
    for (int s = 0; s < 4; ++s) {
      const __m512i v = _mm512_loadu_si512(q + s * kStepBytes);
      op[s] = _mm512_and_si512(v, mask);                          // elements 4s..4s+3
      op[s + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);  // elements 16+4s..
    }
  }
};
struct Q8_0 {
  static constexpr GgmlType type = GgmlType::Q8_0;
  static constexpr int64_t block_bytes = 8 * kStepBytes;
  static constexpr int offset = 128;
  static BILLION_ALWAYS_INLINE void operands(const uint8_t* q, __m512i* op) {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int s = 0; s < 8; ++s) op[s] = _mm512_xor_si512(_mm512_loadu_si512(q + s * kStepBytes), flip);
  }
};

// Four activation bytes (elements p..p+3) in every lane.
BILLION_ALWAYS_INLINE __m512i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

BILLION_ALWAYS_INLINE __m512 row_scales(const uint8_t* scales) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales)));
}

// One group × T tokens: y[j][0..15] for tokens a[j]. Block b's scales at scales + b·stride, its
// quants at quants + b·stride.
template <typename F, int T>
void group_tokens(const uint8_t* scales, const uint8_t* quants, int64_t stride, int64_t nb, const BlockQ8A* const* a,
                  const int32_t* const* sums, float* const* y) {
  __m512 acc[T];
  for (int j = 0; j < T; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i op[8];
    F::operands(quants + b * stride, op);
    const __m512 dw = row_scales(scales + b * stride);
    for (int j = 0; j < T; ++j) {
      const int8_t* q = a[j][b].qs;
      __m512i isum = _mm512_set1_epi32(-F::offset * sums[j][b]);
      for (int k = 0; k < 8; ++k) isum = _mm512_dpbusd_epi32(isum, op[k], broadcast4(q + 4 * k));
      acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(a[j][b].d)), acc[j]);
    }
  }
  for (int j = 0; j < T; ++j) _mm512_storeu_ps(y[j], acc[j]);
}

// A tile of G groups × one token: y[0 .. 16·G). The tile's blocks lie one after another, G
// groups' scales then G groups' quants each, so this reads one stream front to back. No software
// prefetch: on that stream the hardware's suffices (bench_kernels --types Q8_0,Q4_0 --tokens 1,
// 32000x2048, with a temporary switch: 1 or 2 blocks ahead no faster, 4 blocks ahead 15-30 %
// slower on one thread).
template <typename F, int G>
void tile_one_token(const uint8_t* tile, int64_t nb, const BlockQ8A* a, const int32_t* sums, float* y) {
  constexpr int64_t kStride = G * (kBlockScaleBytes + F::block_bytes);
  __m512 acc[G];
  for (int g = 0; g < G; ++g) acc[g] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* block = tile + b * kStride;
    __m512i av[8];
    for (int k = 0; k < 8; ++k) av[k] = broadcast4(a[b].qs + 4 * k);
    const __m512 da = _mm512_set1_ps(a[b].d);
    for (int g = 0; g < G; ++g) {
      __m512i op[8];
      F::operands(block + G * kBlockScaleBytes + g * F::block_bytes, op);
      __m512i even = _mm512_set1_epi32(-F::offset * sums[b]), odd = _mm512_setzero_si512();
      for (int k = 0; k < 8; k += 2) {
        even = _mm512_dpbusd_epi32(even, op[k], av[k]);
        odd = _mm512_dpbusd_epi32(odd, op[k + 1], av[k + 1]);
      }
      const __m512i isum = _mm512_add_epi32(even, odd);
      acc[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(row_scales(block + g * kBlockScaleBytes), da), acc[g]);
    }
  }
  for (int g = 0; g < G; ++g) _mm512_storeu_ps(y + g * kInterleaveRows, acc[g]);
}

template <typename F, int T>
BILLION_ALWAYS_INLINE void run_group_tokens(const uint8_t* scales, const uint8_t* quants, int64_t stride, int64_t nb,
                                            const uint8_t* act, size_t arb, int64_t t0, float* y, int64_t ys) {
  const BlockQ8A* a[T];
  const int32_t* st[T];
  float* yt[T];
  for (int j = 0; j < T; ++j) {
    a[j] = reinterpret_cast<const BlockQ8A*>(act + (t0 + j) * arb);
    st[j] = q8a_block_sums(act + (t0 + j) * arb, nb);
    yt[j] = y + (t0 + j) * ys;
  }
  group_tokens<F, T>(scales, quants, stride, nb, a, st, yt);
}

template <typename F>
void mm_interleaved(const uint8_t* w, size_t, int64_t nr, const void* act_v, size_t arb, int64_t nt, float* y,
                    int64_t ys, int64_t cols) {
  const auto* act = static_cast<const uint8_t*>(act_v);
  const BlockTiles tiles = block_tiles(F::type, nr, cols);
  const int64_t nb = tiles.blocks;

  if (nt == 1) {
    const auto* a = reinterpret_cast<const BlockQ8A*>(act);
    const int32_t* sums = q8a_block_sums(act, nb);
    for_each_tile(tiles, [&](int64_t t, auto groups) {
      tile_one_token<F, groups()>(w + tiles.tile_start(t), nb, a, sums, y + t * kTileRows);
    });
    return;
  }
  for (int64_t g = 0; g < tiles.groups; ++g) {
    const int64_t tile = g / kTileGroups, stride = tiles.tile_block_bytes(tile);
    const uint8_t* scales = w + tiles.header(tile, g % kTileGroups);
    const uint8_t* quants = w + tiles.quants(tile, g % kTileGroups);
    float* yg = y + g * kInterleaveRows;
    int64_t t = 0;
    for (; t + 8 <= nt; t += 8) run_group_tokens<F, 8>(scales, quants, stride, nb, act, arb, t, yg, ys);
    switch (nt - t) {
      case 7: run_group_tokens<F, 7>(scales, quants, stride, nb, act, arb, t, yg, ys); break;
      case 6: run_group_tokens<F, 6>(scales, quants, stride, nb, act, arb, t, yg, ys); break;
      case 5: run_group_tokens<F, 5>(scales, quants, stride, nb, act, arb, t, yg, ys); break;
      case 4: run_group_tokens<F, 4>(scales, quants, stride, nb, act, arb, t, yg, ys); break;
      case 3: run_group_tokens<F, 3>(scales, quants, stride, nb, act, arb, t, yg, ys); break;
      case 2: run_group_tokens<F, 2>(scales, quants, stride, nb, act, arb, t, yg, ys); break;
      case 1: run_group_tokens<F, 1>(scales, quants, stride, nb, act, arb, t, yg, ys); break;
      default: break;
    }
  }
}

// Q8_0 and Q4_1 in ggml's order (WeightLayout::Interleaved16Ggml, ref::mm_q8_0x16_ggml and
// mm_q4_1x16_ggml): per row and token eight float lanes, lane s fed by elements 4s..4s+3 of each
// block (one step's bytes, or nibbles), exactly the grouping of ggml's lane s, so eight
// accumulators of 16 rows each per token; for Q8_0 the int32 lane sums start at -128·(the
// step's four activation bytes' sum), prepared once per call; Q4_1's minimum terms run in a
// ninth chain. Then ggml's eight-lane sum, done on 16 rows at once. The fma per lane and block
// triples the float work of the fast order, which decode (memory-bound) does not notice.

// starts [nt][nb][8]: -128 · Σ of activation bytes 4s..4s+3 of each block, per token.
void prepare_step_starts(const uint8_t* act, size_t arb, int64_t nt, int64_t nb, int32_t* out) {
  for (int64_t t = 0; t < nt; ++t) {
    const auto* a = reinterpret_cast<const BlockQ8A*>(act + t * arb);
    for (int64_t b = 0; b < nb; ++b, out += 8) {
      const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs));
      const __m256i sum4 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), aq);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sum4, 7)));
    }
  }
}

// ggml's eight-lane sum (hsum8 in matmul_avx512.cpp) of every row's lanes acc[0..7].
BILLION_ALWAYS_INLINE __m512 ggml_lane_sum(const __m512* acc) {
  const __m512 r0 = _mm512_add_ps(acc[4], acc[0]), r1 = _mm512_add_ps(acc[5], acc[1]);
  const __m512 r2 = _mm512_add_ps(acc[6], acc[2]), r3 = _mm512_add_ps(acc[7], acc[3]);
  return _mm512_add_ps(_mm512_add_ps(r0, r2), _mm512_add_ps(r1, r3));
}

// The two formats in ggml's order. Lane k of a row is fed by elements 4k..4k+3: for Q8_0 step k's
// bytes; for Q4_1 the low nibbles of step k (k < 4) or the high nibbles of step k-4 (the file's
// element order: low nibbles are elements 0..15). Either way lane k pairs with activation bytes
// 4k..4k+3. A block's header: 16 fp16 d (Q8_0), or 16 d then 16 m (Q4_1).
struct Q8_0Ggml {
  static constexpr GgmlType type = GgmlType::Q8_0;
  static constexpr bool signed_weights = true;  // entered as w+128: lanes start at -128·Σa
  static constexpr bool has_min = false;
  static BILLION_ALWAYS_INLINE void operands(const uint8_t* q, __m512i* op) { Q8_0::operands(q, op); }
};
struct Q4_1Ggml {
  static constexpr GgmlType type = GgmlType::Q4_1;
  static constexpr bool signed_weights = false;  // nibbles 0..15: no offset; m·s_a apart
  static constexpr bool has_min = true;
  static BILLION_ALWAYS_INLINE void operands(const uint8_t* q, __m512i* op) {
    const __m512i mask = _mm512_set1_epi8(0x0F);
    for (int s = 0; s < 4; ++s) {
      const __m512i v = _mm512_loadu_si512(q + s * kStepBytes);
      op[s] = _mm512_and_si512(v, mask);
      op[s + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
    }
  }
};

// G groups of one layout tile × T tokens: y[t] + 16·g. Group g's block b header at
// headers[g] + b·stride, its quants at quants[g] + b·stride. starts[t]: the lanes' -128·Σa per
// block (Q8_0 only). Eight accumulators per (group, token): with G·T = 4 the compiler keeps some
// in L1, which decode (memory-bound) does not notice.
template <typename F, int G, int T>
void ggml_order_tile(const uint8_t* const* headers, const uint8_t* const* quants, int64_t stride, int64_t nb,
                     const BlockQ8A* const* a, const int32_t* const* starts, float* const* y) {
  __m512 acc[G][T][8];
  __m512 acc_min[G][T];
  for (int g = 0; g < G; ++g)
    for (int t = 0; t < T; ++t) {
      acc_min[g][t] = _mm512_setzero_ps();
      for (int s = 0; s < 8; ++s) acc[g][t][s] = _mm512_setzero_ps();
    }
  for (int64_t b = 0; b < nb; ++b) {
    for (int g = 0; g < G; ++g) {
      __m512i op[8];
      F::operands(quants[g] + b * stride, op);
      const uint8_t* header = headers[g] + b * stride;
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(header)));
      for (int t = 0; t < T; ++t) {
        const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(a[t][b].d));
        for (int s = 0; s < 8; ++s) {
          const __m512i start = F::signed_weights ? _mm512_set1_epi32(starts[t][8 * b + s]) : _mm512_setzero_si512();
          const __m512i p = _mm512_dpbusd_epi32(start, op[s], broadcast4(a[t][b].qs + 4 * s));
          acc[g][t][s] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc[g][t][s]);
        }
        if constexpr (F::has_min) {
          const __m512 mw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(header + kBlockScaleBytes)));
          acc_min[g][t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(a[t][b].s), acc_min[g][t]);
        }
      }
    }
  }
  for (int g = 0; g < G; ++g)
    for (int t = 0; t < T; ++t) {
      __m512 sum = ggml_lane_sum(acc[g][t]);
      if constexpr (F::has_min) sum = _mm512_add_ps(sum, acc_min[g][t]);
      _mm512_storeu_ps(y[t] + g * kInterleaveRows, sum);
    }
}

#undef BILLION_ALWAYS_INLINE

// Decode: all G groups of a layout tile at once, so the matrix is read front to back in one
// stream (interleave.h).
template <typename F, int G>
void ggml_tile_one_token(const uint8_t* w, const BlockTiles& tiles, int64_t t, const BlockQ8A* a, const int32_t* st,
                         float* y) {
  const uint8_t* headers[G];
  const uint8_t* quants[G];
  for (int g = 0; g < G; ++g) {
    headers[g] = w + tiles.header(t, g);
    quants[g] = w + tiles.quants(t, g);
  }
  const BlockQ8A* at[1] = {a};
  const int32_t* stt[1] = {st};
  float* yt[1] = {y};
  ggml_order_tile<F, G, 1>(headers, quants, tiles.tile_block_bytes(t), tiles.blocks, at, stt, yt);
}

}  // namespace

namespace {
template <typename F>
void mm_x16_ggml(const uint8_t* w, size_t, int64_t nr, const void* act_v, size_t arb, int64_t nt, float* y,
                 int64_t ys, int64_t cols) {
  const auto* act = static_cast<const uint8_t*>(act_v);
  const BlockTiles tiles = block_tiles(F::type, nr, cols);
  const int64_t nb = tiles.blocks;
  thread_local std::vector<int32_t> starts;  // reused across calls: no allocation in a decode loop
  if constexpr (F::signed_weights) {
    starts.resize(static_cast<size_t>(nt * nb * 8));
    prepare_step_starts(act, arb, nt, nb, starts.data());
  }
  auto token = [&](int64_t t) { return reinterpret_cast<const BlockQ8A*>(act + t * arb); };
  auto starts_of = [&](int64_t t) { return F::signed_weights ? starts.data() + t * nb * 8 : nullptr; };
  if (nt == 1) {
    for_each_tile(tiles, [&](int64_t t, auto groups) {
      ggml_tile_one_token<F, groups()>(w, tiles, t, token(0), starts_of(0), y + t * kTileRows);
    });
    return;
  }
  for (int64_t g = 0; g < tiles.groups; ++g) {  // prefill: one group × two tokens (then a lone one)
    const int64_t tile = g / kTileGroups;
    const uint8_t* headers[1] = {w + tiles.header(tile, g % kTileGroups)};
    const uint8_t* quants[1] = {w + tiles.quants(tile, g % kTileGroups)};
    const int64_t stride = tiles.tile_block_bytes(tile);
    for (int64_t t = 0; t < nt; t += 2) {
      const int T = t + 1 < nt ? 2 : 1;
      const BlockQ8A* a[2] = {token(t), token(t + T - 1)};
      const int32_t* st[2] = {starts_of(t), starts_of(t + T - 1)};
      float* yt[2] = {y + t * ys + g * kInterleaveRows, y + (t + T - 1) * ys + g * kInterleaveRows};
      if (T == 2) ggml_order_tile<F, 1, 2>(headers, quants, stride, nb, a, st, yt);
      else ggml_order_tile<F, 1, 1>(headers, quants, stride, nb, a, st, yt);
    }
  }
}
}  // namespace

void mm_q8_0x16_ggml(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                     int64_t ys, int64_t cols) {
  mm_x16_ggml<Q8_0Ggml>(w, wrb, nr, act, arb, nt, y, ys, cols);
}
void mm_q4_1x16_ggml(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                     int64_t ys, int64_t cols) {
  mm_x16_ggml<Q4_1Ggml>(w, wrb, nr, act, arb, nt, y, ys, cols);
}

void mm_q4_0x16(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                int64_t ys, int64_t cols) {
  mm_interleaved<Q4_0>(w, wrb, nr, act, arb, nt, y, ys, cols);
}
void mm_q8_0x16(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                int64_t ys, int64_t cols) {
  mm_interleaved<Q8_0>(w, wrb, nr, act, arb, nt, y, ys, cols);
}

}  // namespace billion::kernels::avx512
