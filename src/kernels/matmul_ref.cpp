// Scalar reference matmul tiles, one per weight type: the definition the AVX2 tiles are tested
// against. One dot product per (row, token), summed left to right. For quantized types the
// per-block dot product is an exact integer; only the float accumulation across blocks rounds.
// Each block's term is (d_w · d_a) · float(integer dot), the product order of ggml's vec_dot.
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/half.h"
#include "kernels/impl.h"
#include "kernels/interleave.h"

namespace billion::kernels::ref {
namespace {

// Runs dot(w_row, act_row) for every (row, token) of the tile.
template <typename Dot>
void for_each_pair(const uint8_t* w, size_t w_row_bytes, int64_t n_rows, const void* act,
                   size_t act_row_bytes, int64_t n_tok, float* y, int64_t y_stride, Dot dot) {
  const auto* a = static_cast<const uint8_t*>(act);
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t r = 0; r < n_rows; ++r)
      y[t * y_stride + r] = dot(w + r * w_row_bytes, a + t * act_row_bytes);
}

// Unsigned 4-bit value j (0..31) of a 32-element block: low nibbles first, then high.
inline int nibble(const uint8_t* qs, int j) { return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4; }
inline int fifth_bit(const uint8_t* qh_bytes, int j) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  return ((qh >> j) & 1) << 4;
}

}  // namespace

void mm_f32(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
            float* y, int64_t ys, int64_t cols) {
  for_each_pair(w, wrb, nr, act, arb, nt, y, ys, [cols](const uint8_t* wr, const uint8_t* ar) {
    const auto* a = reinterpret_cast<const float*>(ar);
    const auto* b = reinterpret_cast<const float*>(wr);
    float sum = 0.0f;
    for (int64_t i = 0; i < cols; ++i) sum += b[i] * a[i];
    return sum;
  });
}

void mm_f16(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
            float* y, int64_t ys, int64_t cols) {
  for_each_pair(w, wrb, nr, act, arb, nt, y, ys, [cols](const uint8_t* wr, const uint8_t* ar) {
    const auto* a = reinterpret_cast<const float*>(ar);
    const auto* b = reinterpret_cast<const uint16_t*>(wr);
    float sum = 0.0f;
    for (int64_t i = 0; i < cols; ++i) sum += billion::f16_to_f32(b[i]) * a[i];
    return sum;
  });
}

void mm_bf16(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  for_each_pair(w, wrb, nr, act, arb, nt, y, ys, [cols](const uint8_t* wr, const uint8_t* ar) {
    const auto* a = reinterpret_cast<const float*>(ar);
    const auto* b = reinterpret_cast<const uint16_t*>(wr);
    float sum = 0.0f;
    for (int64_t i = 0; i < cols; ++i) sum += bf16_to_f32(b[i]) * a[i];
    return sum;
  });
}

// F16/BF16 in runs of four rows (interleave.h): element i of the run's row j read where the layout
// put it, in the same order as mm_f16/mm_bf16, so the same bits.
template <float (*ToF32)(uint16_t)>
void mm_half_x4(const uint8_t* w, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                int64_t ys, int64_t cols) {
  const auto* wh = reinterpret_cast<const uint16_t*>(w);
  for (int64_t t = 0; t < nt; ++t) {
    const auto* a = reinterpret_cast<const float*>(static_cast<const uint8_t*>(act) + t * arb);
    for (int64_t r = 0; r < nr; ++r) {
      float sum = 0.0f;
      for (int64_t i = 0; i < cols; ++i) sum += ToF32(wh[half_x4_index(r, i, cols)]) * a[i];
      y[t * ys + r] = sum;
    }
  }
}

void mm_f16x4(const uint8_t* w, size_t, int64_t nr, const void* act, size_t arb, int64_t nt,
              float* y, int64_t ys, int64_t cols) {
  mm_half_x4<billion::f16_to_f32>(w, nr, act, arb, nt, y, ys, cols);
}

void mm_bf16x4(const uint8_t* w, size_t, int64_t nr, const void* act, size_t arb, int64_t nt,
               float* y, int64_t ys, int64_t cols) {
  mm_half_x4<bf16_to_f32>(w, nr, act, arb, nt, y, ys, cols);
}

void mm_q8_0(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  for_each_pair(w, wrb, nr, act, arb, nt, y, ys, [cols](const uint8_t* wr, const uint8_t* ar) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(wr);
    const auto* a = reinterpret_cast<const BlockQ8A*>(ar);
    float sum = 0.0f;
    for (int64_t i = 0; i < cols / kQK; ++i) {
      int dot = 0;
      for (int j = 0; j < kQK; ++j) dot += b[i].qs[j] * a[i].qs[j];
      sum += (billion::f16_to_f32(b[i].d) * a[i].d) * static_cast<float>(dot);
    }
    return sum;
  });
}

// Q4_0: sum_j (u_j - 8) a_j, as ggml subtracts the offset per element.
void mm_q4_0(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  for_each_pair(w, wrb, nr, act, arb, nt, y, ys, [cols](const uint8_t* wr, const uint8_t* ar) {
    const auto* b = reinterpret_cast<const BlockQ4_0*>(wr);
    const auto* a = reinterpret_cast<const BlockQ8A*>(ar);
    float sum = 0.0f;
    for (int64_t i = 0; i < cols / kQK; ++i) {
      int dot = 0;
      for (int j = 0; j < kQK; ++j) dot += (nibble(b[i].qs, j) - 8) * a[i].qs[j];
      sum += (billion::f16_to_f32(b[i].d) * a[i].d) * static_cast<float>(dot);
    }
    return sum;
  });
}

// Q4_1: sum_j (d u_j + m) d_a a_j = d d_a sum_j u_j a_j + m s_a, with s_a = fp16(d_a sum_j a_j)
// as ggml's block_q8_1 carries it; the min terms are summed apart and added last, as ggml does.
void mm_q4_1(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  for_each_pair(w, wrb, nr, act, arb, nt, y, ys, [cols](const uint8_t* wr, const uint8_t* ar) {
    const auto* b = reinterpret_cast<const BlockQ4_1*>(wr);
    const auto* a = reinterpret_cast<const BlockQ8A*>(ar);
    float sum = 0.0f, sum_min = 0.0f;
    for (int64_t i = 0; i < cols / kQK; ++i) {
      int dot = 0;
      for (int j = 0; j < kQK; ++j) dot += nibble(b[i].qs, j) * a[i].qs[j];
      sum += (billion::f16_to_f32(b[i].d) * a[i].d) * static_cast<float>(dot);
      sum_min += billion::f16_to_f32(b[i].m) * a[i].s;  // m·d_a·sum(q_a), ggml's fp16 s
    }
    return sum + sum_min;
  });
}

void mm_q5_0(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  for_each_pair(w, wrb, nr, act, arb, nt, y, ys, [cols](const uint8_t* wr, const uint8_t* ar) {
    const auto* b = reinterpret_cast<const BlockQ5_0*>(wr);
    const auto* a = reinterpret_cast<const BlockQ8A*>(ar);
    float sum = 0.0f;
    for (int64_t i = 0; i < cols / kQK; ++i) {
      int dot = 0;
      for (int j = 0; j < kQK; ++j) dot += ((nibble(b[i].qs, j) | fifth_bit(b[i].qh, j)) - 16) * a[i].qs[j];
      sum += (billion::f16_to_f32(b[i].d) * a[i].d) * static_cast<float>(dot);
    }
    return sum;
  });
}

void mm_q5_1(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  for_each_pair(w, wrb, nr, act, arb, nt, y, ys, [cols](const uint8_t* wr, const uint8_t* ar) {
    const auto* b = reinterpret_cast<const BlockQ5_1*>(wr);
    const auto* a = reinterpret_cast<const BlockQ8A*>(ar);
    float sum = 0.0f, sum_min = 0.0f;
    for (int64_t i = 0; i < cols / kQK; ++i) {
      int dot = 0;
      for (int j = 0; j < kQK; ++j) dot += (nibble(b[i].qs, j) | fifth_bit(b[i].qh, j)) * a[i].qs[j];
      sum += (billion::f16_to_f32(b[i].d) * a[i].d) * static_cast<float>(dot);
      sum_min += billion::f16_to_f32(b[i].m) * a[i].s;  // m·d_a·sum(q_a), ggml's fp16 s
    }
    return sum + sum_min;
  });
}

// K-quants against Q8K activations: per 32-element sub-block j, an integer dot with the 6-bit
// scale sc_j folded in, and the minimum m_j times the activation sum (from bsums), so the whole
// super-block needs two float multiplies.
namespace {
template <bool kFive>
float dot_q45_k(const uint8_t* wr, const uint8_t* ar, int64_t cols) {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  const auto* b = reinterpret_cast<const Block*>(wr);
  const auto* a = reinterpret_cast<const BlockQ8K*>(ar);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / kQKK; ++i) {
    int64_t dot = 0, mins = 0;
    for (int sub = 0; sub < 8; ++sub) {
      uint8_t sc, m;
      k_scale_min(sub, b[i].scales, &sc, &m);
      const int chunk = sub / 2, high = sub % 2;
      int isum = 0;
      for (int l = 0; l < 32; ++l) {
        const uint8_t byte = b[i].qs[chunk * 32 + l];
        int q = high ? byte >> 4 : byte & 0xF;
        if constexpr (kFive) q |= ((b[i].qh[l] >> sub) & 1) << 4;
        isum += q * a[i].qs[sub * 32 + l];
      }
      dot += sc * isum;
      mins += m * (a[i].bsums[2 * sub] + a[i].bsums[2 * sub + 1]);
    }
    sum += billion::f16_to_f32(b[i].d) * a[i].d * static_cast<float>(dot) -
           billion::f16_to_f32(b[i].dmin) * a[i].d * static_cast<float>(mins);
  }
  return sum;
}
}  // namespace

void mm_q4_k(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  for_each_pair(w, wrb, nr, act, arb, nt, y, ys,
                [cols](const uint8_t* wr, const uint8_t* ar) { return dot_q45_k<false>(wr, ar, cols); });
}

void mm_q5_k(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  for_each_pair(w, wrb, nr, act, arb, nt, y, ys,
                [cols](const uint8_t* wr, const uint8_t* ar) { return dot_q45_k<true>(wr, ar, cols); });
}

// Q6_K: per sub-block of 16 the exact isum of (q − 32)·a times the int8 scale, summed exactly
// per super-block, then one float step.
namespace {
float dot_q6_k(const uint8_t* wr, const uint8_t* ar, int64_t cols) {
  const auto* b = reinterpret_cast<const BlockQ6_K*>(wr);
  const auto* a = reinterpret_cast<const BlockQ8K*>(ar);
  float sum = 0.0f;
  for (int64_t i = 0; i < cols / kQKK; ++i) {
    int8_t q[kQKK];  // the 6-bit values minus 32, in element order (layout: quant.cpp)
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = b[i].ql + 64 * half;
      const uint8_t* qh = b[i].qh + 32 * half;
      int8_t* o = q + 128 * half;
      for (int l = 0; l < 32; ++l) {
        o[l] = static_cast<int8_t>(((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
        o[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
        o[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        o[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
    int64_t dot = 0;
    for (int sub = 0; sub < 16; ++sub) {
      int isum = 0;
      for (int l = 0; l < 16; ++l) isum += q[sub * 16 + l] * a[i].qs[sub * 16 + l];
      dot += b[i].scales[sub] * isum;
    }
    sum += billion::f16_to_f32(b[i].d) * a[i].d * static_cast<float>(dot);
  }
  return sum;
}
}  // namespace

void mm_q6_k(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt,
             float* y, int64_t ys, int64_t cols) {
  for_each_pair(w, wrb, nr, act, arb, nt, y, ys,
                [cols](const uint8_t* wr, const uint8_t* ar) { return dot_q6_k(wr, ar, cols); });
}

void quantize_q8a(const float* x, void* y, int64_t n) {
  quantize_row_q8a_ref(x, static_cast<BlockQ8A*>(y), n);
}
void quantize_q8k(const float* x, void* y, int64_t n) {
  quantize_row_q8k_ref(x, static_cast<BlockQ8K*>(y), n);
}

// Q4_0 and Q8_0 interleaved by 16 rows (interleave.h): the definition of the interleaved
// arithmetic. w is the start of a tile (n_rows a multiple of 16, w_row_bytes the plain row size,
// so the matrix spans n_rows rows' bytes). Per (row, token): acc = fma(float(isum_b), d_w·d_a,
// acc) over the blocks in order, isum_b the exact integer dot product of block b.
namespace {
template <bool kQ4>
void mm_interleaved(const uint8_t* w, size_t, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                    int64_t ys, int64_t cols) {
  constexpr int kQuantBytes = kQ4 ? 16 : 32;  // per block and row
  const BlockTiles tiles = block_tiles(kQ4 ? GgmlType::Q4_0 : GgmlType::Q8_0, nr, cols);
  const auto* a_rows = static_cast<const uint8_t*>(act);
  for (int64_t g = 0; g < nr / kInterleaveRows; ++g) {
    const int64_t tile = g / kTileGroups, stride = tiles.tile_block_bytes(tile);
    const uint8_t* scales = w + tiles.header(tile, g % kTileGroups);
    const uint8_t* quants = w + tiles.quants(tile, g % kTileGroups);
    for (int64_t t = 0; t < nt; ++t) {
      const auto* a = reinterpret_cast<const BlockQ8A*>(a_rows + t * arb);
      for (int i = 0; i < kInterleaveRows; ++i) {
        float acc = 0.0f;
        for (int64_t b = 0; b < tiles.blocks; ++b) {
          int isum = 0;
          for (int s = 0; s < kQuantBytes / 4; ++s)
            for (int j = 0; j < 4; ++j) {
              const uint8_t byte = quants[b * stride + s * kInterleaveStepBytes + i * 4 + j];
              if constexpr (kQ4)
                isum += ((byte & 0xF) - 8) * a[b].qs[4 * s + j] + ((byte >> 4) - 8) * a[b].qs[16 + 4 * s + j];
              else
                isum += static_cast<int8_t>(byte) * a[b].qs[4 * s + j];
            }
          uint16_t d;
          std::memcpy(&d, scales + b * stride + i * 2, 2);
          const float scale = billion::f16_to_f32(d) * a[b].d;
          acc = std::fma(static_cast<float>(isum), scale, acc);
        }
        y[t * ys + g * kInterleaveRows + i] = acc;
      }
    }
  }
}
}  // namespace

void mm_q4_0x16(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                int64_t ys, int64_t cols) {
  mm_interleaved<true>(w, wrb, nr, act, arb, nt, y, ys, cols);
}
void mm_q8_0x16(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                int64_t ys, int64_t cols) {
  mm_interleaved<false>(w, wrb, nr, act, arb, nt, y, ys, cols);
}

// Q4_K interleaved by 16 rows: the same arithmetic as mm_q4_k (interleave.h), so each row is
// read back into the file's layout and multiplied by the plain reference.
void mm_q4_kx16(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                int64_t ys, int64_t cols) {
  std::vector<uint8_t> row(wrb);
  for (int64_t r = 0; r < nr; ++r) {
    interleaved_row_bytes(GgmlType::Q4_K, w, nr, cols, r, row.data());
    for (int64_t t = 0; t < nt; ++t)
      y[t * ys + r] = dot_q45_k<false>(row.data(), static_cast<const uint8_t*>(act) + t * arb, cols);
  }
}

// Q6_K interleaved by 16 rows: likewise the arithmetic of mm_q6_k, row by row read back.
void mm_q6_kx16(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                int64_t ys, int64_t cols) {
  std::vector<uint8_t> row(wrb);
  for (int64_t r = 0; r < nr; ++r) {
    interleaved_row_bytes(GgmlType::Q6_K, w, nr, cols, r, row.data());
    for (int64_t t = 0; t < nt; ++t)
      y[t * ys + r] = dot_q6_k(row.data(), static_cast<const uint8_t*>(act) + t * arb, cols);
  }
}

// Q8_0 and Q4_1 interleaved by 16 rows in ggml's vec_dot order (WeightLayout::Interleaved16Ggml):
// the sequence of ggml's AVX2 q8_0 / q4_1 dot products, which the plain layout's SIMD tiles follow
// (matmul_avx2.cpp). Per row: eight float lanes, lane k fed by the products of elements
// 4k..4k+3 of each block (for Q4_1 the low nibbles are elements 0..15, the high ones 16..31),
// lane_k = fma(d_w·d_a, float(p_k), lane_k) block by block; then the eight-lane sum (x4+x0 ..
// x7+x3, then (r0+r2) + (r1+r3)); Q4_1 adds its minimum terms, an fma chain m_w·s_a over the
// blocks, last.
namespace {
template <bool kQ4_1>
void mm_x16_ggml(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                 int64_t ys, int64_t cols) {
  using Block = std::conditional_t<kQ4_1, BlockQ4_1, BlockQ8_0>;
  std::vector<uint8_t> row(wrb);
  for (int64_t r = 0; r < nr; ++r) {
    interleaved_row_bytes(kQ4_1 ? GgmlType::Q4_1 : GgmlType::Q8_0, w, nr, cols, r, row.data());
    const auto* b = reinterpret_cast<const Block*>(row.data());
    for (int64_t t = 0; t < nt; ++t) {
      const auto* a = reinterpret_cast<const BlockQ8A*>(static_cast<const uint8_t*>(act) + t * arb);
      float lane[8] = {}, mins = 0.0f;
      for (int64_t i = 0; i < cols / kQK; ++i) {
        const float d = billion::f16_to_f32(b[i].d) * a[i].d;
        for (int k = 0; k < 8; ++k) {
          int p = 0;
          for (int j = 4 * k; j < 4 * k + 4; ++j) {
            if constexpr (kQ4_1) p += nibble(b[i].qs, j) * a[i].qs[j];
            else p += b[i].qs[j] * a[i].qs[j];
          }
          lane[k] = std::fma(d, static_cast<float>(p), lane[k]);
        }
        if constexpr (kQ4_1) mins = std::fma(billion::f16_to_f32(b[i].m), a[i].s, mins);
      }
      float r4[4];
      for (int k = 0; k < 4; ++k) r4[k] = lane[k + 4] + lane[k];
      const float sum = (r4[0] + r4[2]) + (r4[1] + r4[3]);
      y[t * ys + r] = kQ4_1 ? sum + mins : sum;
    }
  }
}
}  // namespace

void mm_q8_0x16_ggml(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                     int64_t ys, int64_t cols) {
  mm_x16_ggml<false>(w, wrb, nr, act, arb, nt, y, ys, cols);
}
void mm_q4_1x16_ggml(const uint8_t* w, size_t wrb, int64_t nr, const void* act, size_t arb, int64_t nt, float* y,
                     int64_t ys, int64_t cols) {
  mm_x16_ggml<true>(w, wrb, nr, act, arb, nt, y, ys, cols);
}

}  // namespace billion::kernels::ref
