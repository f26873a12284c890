// AVX2 kernels for Q8_0 and Q4_1 in ggml's order (WeightLayout::Interleaved16Ggml), for CPUs
// without AVX-512 (Zen 3): the tied Q8_0 output matrix of SmolLM2 / Llama-3.2 Q8_0, read for
// every generated token, and SmolLM2's Q4_1 matrices, streamed from the interleaved layout while
// the logits keep llama.cpp's bits. Bit-identical to ref::mm_q8_0x16_ggml / mm_q4_1x16_ggml, and
// so to the plain layout's tiles (matmul_avx2.cpp).
//
// One 256-bit register holds 8 rows (half of a 16-row group): a 64-byte step is two halves, and
// the 32 bytes of half h give each of its 8 int32 lanes four quant bytes of its own row. Row i's
// ggml lane s is fed by step s of each block, so a half needs eight float accumulators (one per
// step) and the 16 rows of a group would need all 16 YMM registers; hence a group is done as
// two passes, one per half (the second one re-reads the group from L1/L2).
//
// Products (Q8_0): weights and activations are both signed, and maddubs wants one unsigned operand, so
// the sign trick of the plain tile: |w| (unsigned; -128 becomes 128) times a with w's sign
// applied, byte by byte (vpsignb works lane-wise, so the broadcast activation is no obstacle).
// maddubs pairs are ≤ 2·128·127 < 2^15, so no int16 saturation; madd with ones then sums the
// pairs into the exact int32 sum of the row's four products. Each lane then does
// fma(d_w·d_a, float(p), lane) in block order, and at the end ggml's eight-lane sum
// (x4+x0 .. x7+x3, then (r0+r2)+(r1+r3)), all with explicit intrinsics.
//
// Decode is memory-bound: while a layout tile (up to four groups, interleave.h) is worked on,
// the next tile, which follows it in memory, is prefetched into L2, spread evenly over the tile's
// 2·G·nb block passes so the memory stream never pauses (not into L1: a 2048-column tile is
// 136 KiB). The tile's own passes then read it from L2 in any order, group by group and half by
// half. One pass over both halves with 16 accumulators (the compiler spills a few) measured the
// same within this machine's noise, so the pass per half stays, free of spills.
#pragma GCC optimize("fp-contract=off")  // the float sequence is the reference's; nothing fused
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/impl.h"
#include "kernels/interleave.h"

namespace billion::kernels::avx2 {
namespace {

#define BILLION_ALWAYS_INLINE inline __attribute__((always_inline))

constexpr int64_t kStepBytes = kInterleaveStepBytes;
constexpr int64_t kLineBytes = 64;

BILLION_ALWAYS_INLINE __m256i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Prefetches `bytes` bytes at `next` (the tile after this one), a slice per block pass: pass i
// of `passes` takes the cache lines of [i·bytes/passes, (i+1)·bytes/passes).
struct NextTile {
  const char* next = nullptr;  // null: nothing to prefetch (the last tile of the matrix)
  int64_t bytes = 0, passes = 1;
  BILLION_ALWAYS_INLINE void slice(int64_t i) const {
    if (!next) return;
    const int64_t first = i * bytes / passes / kLineBytes, last = ((i + 1) * bytes / passes - 1) / kLineBytes;
    for (int64_t l = first; l <= last; ++l) _mm_prefetch(next + l * kLineBytes, _MM_HINT_T1);
  }
};

// Half h (rows 8h..8h+7) of one group × one token: y[0..7]. Block b's header at
// header + b·stride, its quants at quants + b·stride. pass0 numbers this half's block passes for
// the prefetcher. Q8_0: lane s is step s's bytes. Q4_1: lane s < 4 is step s's low nibbles, lane
// s ≥ 4 step s-4's high nibbles (elements 4s..4s+3 either way), unsigned, so maddubs takes them
// as they are; the minimum terms m_w·s_a run in their own fma chain, added after the lane sum.
template <bool kQ4_1>
void half_one_token(const uint8_t* group_header, const uint8_t* group_quants, int64_t stride, int h, int64_t nb,
                    const BlockQ8A* a, float* y, const NextTile& pf, int64_t pass0) {
  const uint8_t* header = group_header + 16 * h;  // this half's 8 d (Q4_1: its 8 m 32 bytes on)
  const uint8_t* quants = group_quants + 32 * h;
  const __m256i ones = _mm256_set1_epi16(1), low = _mm256_set1_epi8(0x0F);
  __m256 lane[8], mins = _mm256_setzero_ps();
  for (int s = 0; s < 8; ++s) lane[s] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    pf.slice(pass0 + b);
    const uint8_t* q = quants + b * stride;
    const uint8_t* hd = header + b * stride;
    // d_w·d_a per row, rounded as the reference's scalar product.
    const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hd))), _mm256_set1_ps(a[b].d));
    if constexpr (kQ4_1) {
      for (int s = 0; s < 4; ++s) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + s * kStepBytes));
        const __m256i p_low = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v, low), broadcast4(a[b].qs + 4 * s)), ones);
        const __m256i p_high = _mm256_madd_epi16(
            _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), low), broadcast4(a[b].qs + 16 + 4 * s)), ones);
        lane[s] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p_low), lane[s]);
        lane[s + 4] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p_high), lane[s + 4]);
      }
      const __m256 m = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hd + 32)));
      mins = _mm256_fmadd_ps(m, _mm256_set1_ps(a[b].s), mins);
    } else {
      for (int s = 0; s < 8; ++s) {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + s * kStepBytes));
        const __m256i x = _mm256_sign_epi8(broadcast4(a[b].qs + 4 * s), w);
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), x), ones);
        lane[s] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), lane[s]);
      }
    }
  }
  const __m256 r0 = _mm256_add_ps(lane[4], lane[0]), r1 = _mm256_add_ps(lane[5], lane[1]);
  const __m256 r2 = _mm256_add_ps(lane[6], lane[2]), r3 = _mm256_add_ps(lane[7], lane[3]);
  __m256 sum = _mm256_add_ps(_mm256_add_ps(r0, r2), _mm256_add_ps(r1, r3));
  if constexpr (kQ4_1) sum = _mm256_add_ps(sum, mins);
  _mm256_storeu_ps(y, sum);
}

// All tiles of a matrix in ggml's order (Q8_0 or Q4_1), decode or prefill.
template <bool kQ4_1>
void mm_x16_ggml(const uint8_t* w, int64_t nr, const void* act_v, size_t arb, int64_t nt, float* y, int64_t ys,
                 int64_t cols) {
  const auto* act = static_cast<const uint8_t*>(act_v);
  const BlockTiles tiles = block_tiles(kQ4_1 ? GgmlType::Q4_1 : GgmlType::Q8_0, nr, cols);
  const int64_t nb = tiles.blocks;
  auto half = [&](int64_t g, int h, const BlockQ8A* a, float* yg, const NextTile& pf, int64_t pass0) {
    const int64_t t = g / kTileGroups, i = g % kTileGroups;
    half_one_token<kQ4_1>(w + tiles.header(t, i), w + tiles.quants(t, i), tiles.tile_block_bytes(t), h, nb, a, yg + 8 * h,
                          pf, pass0);
  };
  if (nt == 1) {  // decode: stream the tiles, the next one prefetched while this one is summed
    const auto* a = reinterpret_cast<const BlockQ8A*>(act);
    for (int64_t t = 0; t < tiles.tiles(); ++t) {
      const int64_t groups = tiles.tile_groups(t);
      NextTile pf;
      if (t + 1 < tiles.tiles())
        pf = {reinterpret_cast<const char*>(w + tiles.tile_start(t + 1)), tiles.tile_start(t + 1) - tiles.tile_start(t), 2 * groups * nb};
      for (int64_t i = 0; i < groups; ++i)
        for (int h = 0; h < 2; ++h) half(t * kTileGroups + i, h, a, y + (t * kTileGroups + i) * kInterleaveRows, pf, (2 * i + h) * nb);
    }
    return;
  }
  // Prefill (SmolLM2's Q4_1 matrices and the output evaluated for one token in generation): per
  // group and half, every token in turn, the half's bytes staying in L1.
  const NextTile none;
  for (int64_t g = 0; g < tiles.groups; ++g)
    for (int h = 0; h < 2; ++h)
      for (int64_t t = 0; t < nt; ++t)
        half(g, h, reinterpret_cast<const BlockQ8A*>(act + t * arb), y + t * ys + g * kInterleaveRows, none, 0);
}

#undef BILLION_ALWAYS_INLINE

}  // namespace

void mm_q8_0x16_ggml(const uint8_t* w, size_t, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                     int64_t ys, int64_t cols) {
  mm_x16_ggml<false>(w, nr, act, arb, nt, y, ys, cols);
}
void mm_q4_1x16_ggml(const uint8_t* w, size_t, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                     int64_t ys, int64_t cols) {
  mm_x16_ggml<true>(w, nr, act, arb, nt, y, ys, cols);
}

}  // namespace billion::kernels::avx2
