// AVX-512 matmul tiles for 16-bit float weights, F16 and BF16 (compiled with -mavx512f/bw/vl/dq;
// called only after the CPU check in dispatch.cpp). Same contract as matmul_avx2.cpp's float
// tiles; only the float summation order differs from the scalar reference.
//
// Arithmetic of one (row, token), whatever tile computes it: one 16-lane accumulator; the columns
// are cut into 16-wide blocks, each converted to fp32 with one instruction and FMA'd in column
// order; a column tail (cols % 16) is one more block read with a mask (the masked-off lanes add
// 0·0); then the 16-lane sum in a fixed order. Every tile runs exactly this sequence per pair,
// so the tile shape never changes a result.
//
// Tiles: decode (one token) streams one row at a time, so that the matrix is read front to back
// in one stream (rows are consecutive); prefill uses 4 rows × kPrefillTokens tokens, so each
// converted weight block serves 5 tokens.

#include "kernels/avx512_intrinsics.h"

#include "kernels/impl.h"
#include "kernels/interleave.h"

namespace billion::kernels::avx512 {
namespace {

constexpr int kLanes = 16;  // fp32 lanes of a ZMM register
// Decode. The tile was 8 rows side by side, each prefetched 1 KiB ahead into L2 (measured on 4 KiB
// pages). With the weights in 2 MiB pages one row at a time reads faster: bench_kernels --types
// F16 --tokens 1 (2026-11-26 20:45 UTC, alternating, GB/s of one thread / two): 2048x2048
// 25.7-32.6 / 39-46 against 22-24 / 30-34, 32000x2048 27-30 / 33-58 against 22-23 / 32-47. A
// 2048-column row wants no software prefetch (the hardware's follows one stream; 1 KiB ahead
// read 27.6-30, 2 KiB 24.7-27.7); a 5632-column row (11 KiB, the down projection) does, into L2
// 1 KiB ahead in the row and one row ahead (the next row at the same pace): 23.4-23.9 / 32-36
// against 15.9-17.2 / 26-30 without, and 20-22 / 35 for the 8-row tile.
constexpr int kPrefetchBytes = 1024;
constexpr size_t kLongRowBytes = 8192;  // rows longer than this get the software prefetch
// Prefill tile: 4 rows × 5 tokens, 20 accumulators + 4 converted weight vectors + 1 activation
// vector of the 32 ZMM registers. Measured with a throwaway timing harness while the tile was
// written (CPU time, 128×2048 weights × 64 tokens, one thread):
// 4×5 108 GFLOP/s, 4×6 106, 4×7 104; with two accumulators per pair 4×3 101, 2×6 64, 3×4 60;
// the AVX2 4×2 tile 94.
constexpr int kPrefillTokens = 5;

// The 16-lane sum in a fixed order: high half + low half, then the 8-lane halving.
inline float hsum16(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 1), _mm512_extractf32x8_ps(v, 0));
  __m128 s = _mm_add_ps(_mm256_extractf128_ps(h, 1), _mm256_castps256_ps128(h));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

struct F16 {
  static __m512 widen(__m256i h) { return _mm512_cvtph_ps(h); }
  static __m512 load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load_mask(const uint16_t* p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  }
};
struct BF16 {  // bf16 is the top half of an fp32
  static __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static __m512 load(const uint16_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 load_mask(const uint16_t* p, __mmask16 m) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
};

// A row's 16 columns from i in a run of four interleaved rows (interleave.h): its eight of step
// i/8 and its eight of the next step, 64 bytes further (p: the row's eight of step i/8).
inline __m256i run_pair(const uint16_t* p) {
  const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kHalfRunRows * kHalfStepCols));
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

// R rows × T tokens. PF: distance in bytes of a prefetch into L2 (_MM_HINT_T1) ahead of each
// row's stream, and of the next tile's rows at the same pace (0: none). X4: w is a run of four
// rows in the interleaved layout (R = 4; its 16 columns from i gathered by run_pair): the same
// blocks in the same order, so the same bits (the loader keeps the file's rows for this table,
// dispatch.cpp says why; these tiles serve a matrix re-laid all the same).
template <typename F, int R, int T, int PF, bool X4 = false>
inline void micro(const uint8_t* w, size_t wrb, const uint8_t* act, size_t arb, float* y,
                  int64_t ys, int64_t cols) {
  static_assert(!X4 || (R == kHalfRunRows && PF == 0), "an interleaved run is four rows, one stream");
  const uint16_t* wr[R];
  const float* xt[T];
  for (int r = 0; r < R; ++r)
    wr[r] = X4 ? reinterpret_cast<const uint16_t*>(w) + r * kHalfStepCols : reinterpret_cast<const uint16_t*>(w + r * wrb);
  for (int t = 0; t < T; ++t) xt[t] = reinterpret_cast<const float*>(act + t * arb);
  __m512 acc[R][T];  // 16 lanes per (row, token)
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  // One 16-column block into every accumulator; m masks the columns past the row's end.
  auto block = [&](int64_t i, __mmask16 m, bool full) {
    __m512 wv[R];
    for (int r = 0; r < R; ++r) {
      if constexpr (X4)  // a tail is one step of 8 (cols % 8 == 0): its upper lanes zero, as masked
        wv[r] = F::widen(full ? run_pair(wr[r] + kHalfRunRows * i)
                              : _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wr[r] + kHalfRunRows * i))));
      else
        wv[r] = full ? F::load(wr[r] + i) : F::load_mask(wr[r] + i, m);
    }
    for (int t = 0; t < T; ++t) {
      const __m512 xv = full ? _mm512_loadu_ps(xt[t] + i) : _mm512_maskz_loadu_ps(m, xt[t] + i);
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  };
  int64_t i = 0;
  for (; i + 2 * kLanes <= cols; i += 2 * kLanes) {  // 64 bytes of each weight row per step
    block(i, 0xFFFF, true);
    block(i + kLanes, 0xFFFF, true);
    // One prefetch per row per 64-byte line. A prefetch never faults, so running past the
    // matrix's end is harmless.
    if constexpr (PF > 0)
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(wr[r] + i) + PF, _MM_HINT_T1);
        // The next tile's rows at the same pace, so they start warm (rows are consecutive).
        _mm_prefetch(reinterpret_cast<const char*>(wr[r] + i) + R * wrb, _MM_HINT_T1);
      }
  }
  if (i + kLanes <= cols) {
    block(i, 0xFFFF, true);
    i += kLanes;
  }
  if (i < cols) block(i, static_cast<__mmask16>((1u << (cols - i)) - 1), false);
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) y[t * ys + r] = hsum16(acc[r][t]);
}

// All tiles of one token group: 4 rows at a time, then single rows.
template <typename F, int T>
inline void token_group(const uint8_t* w, size_t wrb, int64_t nr, const uint8_t* a, size_t arb,
                        float* y, int64_t ys, int64_t cols) {
  int64_t r = 0;
  for (; r + 4 <= nr; r += 4) micro<F, 4, T, 0>(w + r * wrb, wrb, a, arb, y + r, ys, cols);
  for (; r < nr; ++r) micro<F, 1, T, 0>(w + r * wrb, wrb, a, arb, y + r, ys, cols);
}

// Prefill: tokens in groups of kPrefillTokens, the 2-4 left over as one group; a single token
// (decode, or the last one left) streams the rows one by one.
template <typename F>
void mm_half(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  const auto* a = static_cast<const uint8_t*>(act);
  int64_t t = 0;
  for (; t + kPrefillTokens <= nt; t += kPrefillTokens)
    token_group<F, kPrefillTokens>(w, wrb, nr, a + t * arb, arb, y + t * ys, ys, cols);
  static_assert(kPrefillTokens == 5, "the remainder cases below assume groups of 5");
  switch (nt - t) {
    case 4: token_group<F, 4>(w, wrb, nr, a + t * arb, arb, y + t * ys, ys, cols); t += 4; break;
    case 3: token_group<F, 3>(w, wrb, nr, a + t * arb, arb, y + t * ys, ys, cols); t += 3; break;
    case 2: token_group<F, 2>(w, wrb, nr, a + t * arb, arb, y + t * ys, ys, cols); t += 2; break;
    default: break;
  }
  if (t < nt) {
    const uint8_t* at = a + t * arb;
    float* yt = y + t * ys;
    if (wrb > kLongRowBytes)
      for (int64_t r = 0; r < nr; ++r) micro<F, 1, 1, kPrefetchBytes>(w + r * wrb, wrb, at, arb, yt + r, ys, cols);
    else
      for (int64_t r = 0; r < nr; ++r) micro<F, 1, 1, 0>(w + r * wrb, wrb, at, arb, yt + r, ys, cols);
  }
}

// Runs of four interleaved rows (n_rows a multiple of 4, cols of 8): tokens grouped as mm_half
// groups them, a single token through the same four-row tile. Run r/4 starts at r·wrb.
template <typename F>
void mm_half_x4(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                int64_t ys, int64_t cols) {
  const auto* a = static_cast<const uint8_t*>(act);
  for (int64_t r = 0; r < nr; r += kHalfRunRows) {
    const uint8_t* run = w + r * wrb;
    int64_t t = 0;
    for (; t + kPrefillTokens <= nt; t += kPrefillTokens)
      micro<F, 4, kPrefillTokens, 0, true>(run, 0, a + t * arb, arb, y + t * ys + r, ys, cols);
    const uint8_t* at = a + t * arb;
    float* yt = y + t * ys + r;
    switch (nt - t) {
      case 4: micro<F, 4, 4, 0, true>(run, 0, at, arb, yt, ys, cols); break;
      case 3: micro<F, 4, 3, 0, true>(run, 0, at, arb, yt, ys, cols); break;
      case 2: micro<F, 4, 2, 0, true>(run, 0, at, arb, yt, ys, cols); break;
      case 1: micro<F, 4, 1, 0, true>(run, 0, at, arb, yt, ys, cols); break;
      default: break;
    }
  }
}

}  // namespace

void mm_f16x4(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
              float* y, int64_t ys, int64_t cols) {
  mm_half_x4<F16>(w, wrb, nr, act, arb, nt, y, ys, cols);
}

void mm_bf16x4(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
               float* y, int64_t ys, int64_t cols) {
  mm_half_x4<BF16>(w, wrb, nr, act, arb, nt, y, ys, cols);
}

void mm_f16(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
            float* y, int64_t ys, int64_t cols) {
  mm_half<F16>(w, wrb, nr, act, arb, nt, y, ys, cols);
}

void mm_bf16(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  mm_half<BF16>(w, wrb, nr, act, arb, nt, y, ys, cols);
}

}  // namespace billion::kernels::avx512
