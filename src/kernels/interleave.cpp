// The interleaved layouts of Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, F16 and BF16 weights (interleave.h):
// building them from a file's rows and reading a row back. Q4_0, Q4_1 and Q8_0 are fp16 header fields
// followed by the quant bytes, laid in tiles of four groups; Q4_K and Q6_K are interleaved per
// super-block, group by group.
#include "kernels/interleave.h"

#include <cstddef>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/quant.h"

namespace billion::kernels {
namespace {

// Quant bytes per block and row: 16 (Q4_0) or 32 (Q8_0); 0 for a type without the layout.
size_t quant_bytes(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0: return sizeof(BlockQ4_0::qs);
    case GgmlType::Q4_1: return sizeof(BlockQ4_1::qs);
    case GgmlType::Q8_0: return sizeof(BlockQ8_0::qs);
    default: return 0;
  }
}
// Bytes before the quants in a block: fp16 d, and for Q4_1 the fp16 m after it.
size_t header_bytes(GgmlType type) { return type == GgmlType::Q4_1 ? 4 : 2; }

// Calls fn(offset in the group's interleaved super-block, offset in row i's 144-byte block,
// length) for every piece of row i's super-block.
template <typename Fn>
void for_each_q4_k_piece(int i, Fn fn) {
  fn(2 * i, offsetof(BlockQ4_K, d), 2);
  fn(kQ4KxDmin + 2 * i, offsetof(BlockQ4_K, dmin), 2);
  for (int k = 0; k < 3; ++k) fn(kQ4KxScales + k * kInterleaveStepBytes + 4 * i, offsetof(BlockQ4_K, scales) + 4 * k, 4);
  for (int step = 0; step < 32; ++step)
    fn(kQ4KxQuants + step * kInterleaveStepBytes + 4 * i, offsetof(BlockQ4_K, qs) + 4 * step, 4);
}

// The same for row i of an interleaved Q6_K super-block b (its 210-byte block in the file).
template <typename Fn>
void for_each_q6_k_piece(int64_t b, int i, Fn fn) {
  const int64_t steps = q6_kx_steps(b);
  for (int s = 0; s < 32; ++s) fn(steps + s * kInterleaveStepBytes + 4 * i, offsetof(BlockQ6_K, ql) + 4 * s, 4);
  for (int u = 0; u < 16; ++u)
    fn(steps + kQ6KxQh + u * kInterleaveStepBytes + 4 * i, offsetof(BlockQ6_K, qh) + 4 * u, 4);
  for (int j = 0; j < 16; ++j) fn(steps + kQ6KxScales + 16 * j + i, offsetof(BlockQ6_K, scales) + j, 1);
  fn(q6_kx_d(b) + 2 * i, offsetof(BlockQ6_K, d), 2);
}

bool is_kquant(GgmlType type) { return type == GgmlType::Q4_K || type == GgmlType::Q6_K; }
bool is_half(GgmlType type) { return type == GgmlType::F16 || type == GgmlType::BF16; }

// The pieces of row i's super-block b of a K-quant type, and the bytes of 16 rows' super-blocks.
template <typename Fn>
void for_each_kquant_piece(GgmlType type, int64_t b, int i, Fn fn) {
  if (type == GgmlType::Q4_K) for_each_q4_k_piece(i, fn);
  else for_each_q6_k_piece(b, i, fn);
}
int64_t kquant_group_block_bytes(GgmlType type) { return type == GgmlType::Q4_K ? kQ4KxBytes : kQ6KxBytes; }

// Calls fn(row, offset in the row, offset in the interleaved matrix, length) for every piece of
// rows [r0, r1) of a Q4_0, Q4_1 or Q8_0 matrix (interleave.h): each header field of a block
// (2 bytes) and each 4 quant bytes.
template <typename Fn>
void for_each_block_piece(GgmlType type, int64_t rows, int64_t cols, int64_t r0, int64_t r1, Fn fn) {
  const BlockTiles tiles = block_tiles(type, rows, cols);
  const int64_t hb = static_cast<int64_t>(header_bytes(type)), qb = static_cast<int64_t>(quant_bytes(type));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t g = r / kInterleaveRows, t = g / kTileGroups, i = g % kTileGroups, j = r % kInterleaveRows;
    const int64_t header = tiles.header(t, i), quants = tiles.quants(t, i), stride = tiles.tile_block_bytes(t);
    for (int64_t b = 0; b < tiles.blocks; ++b) {
      const int64_t block = b * (hb + qb);  // in the row
      for (int64_t f = 0; f < hb / 2; ++f)  // d (and m): each field's 16 rows side by side
        fn(r, block + 2 * f, header + b * stride + f * kInterleaveRows * 2 + j * 2, 2);
      for (int64_t s = 0; s < qb / 4; ++s) fn(r, block + hb + 4 * s, quants + b * stride + s * kInterleaveStepBytes + j * 4, 4);
    }
  }
}

}  // namespace

BlockTiles block_tiles(GgmlType type, int64_t rows, int64_t cols) {
  return {.groups = rows / kInterleaveRows, .blocks = cols / kQK,
          .header_bytes = kInterleaveRows * static_cast<int64_t>(header_bytes(type)),
          .quant_bytes = kInterleaveRows * static_cast<int64_t>(quant_bytes(type))};
}

int64_t interleaved_share_rows(GgmlType type) {
  return is_half(type) ? kHalfRunRows : is_kquant(type) ? kInterleaveRows : kTileRows;
}

void q8a_token_tile(const uint8_t* q8a, size_t q8a_row_bytes, int64_t n_tokens, int64_t nb, int64_t tile, uint8_t* out) {
  // Every byte of a full tile is written below; only a partial one needs its padding zeroed.
  if (kTokenTile * (tile + 1) > n_tokens) std::memset(out, 0, static_cast<size_t>(nb * kTokenTileBlockBytes));
  for (int64_t j = 0; j < kTokenTile && kTokenTile * tile + j < n_tokens; ++j) {
    const auto* a = reinterpret_cast<const BlockQ8A*>(q8a + (kTokenTile * tile + j) * q8a_row_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* block = out + b * kTokenTileBlockBytes;
      for (int k = 0; k < kQK / 2; ++k) {
        const int16_t pair[2] = {a[b].qs[2 * k], a[b].qs[2 * k + 1]};
        std::memcpy(block + 64 * k + 4 * j, pair, 4);
      }
      std::memcpy(block + kTokenTile * 64 + 4 * j, &a[b].d, 4);
    }
  }
}

bool can_interleave(GgmlType type, int64_t rows, int64_t cols) {
  if (rows <= 0 || rows % kInterleaveRows != 0 || cols <= 0) return false;
  if (is_kquant(type)) return cols % kQKK == 0;
  if (is_half(type)) return cols % kHalfStepCols == 0;
  return quant_bytes(type) > 0 && cols % kQK == 0;
}

void interleave_rows(GgmlType type, const uint8_t* src, size_t src_row_bytes, int64_t rows, int64_t cols,
                     uint8_t* dst) {
  if (!can_interleave(type, rows, cols))
    fail("interleave_rows", "a {}×{} {} matrix: the type must be Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, F16 or BF16, rows a multiple of {} and columns of the block size",
         rows, cols, ggml_type_name(type), kInterleaveRows);
  if (is_half(type)) {
    auto* to = reinterpret_cast<uint16_t*>(dst);
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* row = src + r * src_row_bytes;
      for (int64_t i = 0; i < cols; i += kHalfStepCols)
        std::memcpy(to + half_x4_index(r, i, cols), row + i * sizeof(uint16_t), kHalfStepCols * sizeof(uint16_t));
    }
    return;
  }
  if (is_kquant(type)) {
    const int64_t nb = cols / kQKK, group_block = kquant_group_block_bytes(type);
    const size_t block = type_block_bytes(type);
    for (int64_t g = 0; g < rows / kInterleaveRows; ++g)
      for (int i = 0; i < kInterleaveRows; ++i) {
        const uint8_t* row = src + (g * kInterleaveRows + i) * src_row_bytes;
        for (int64_t b = 0; b < nb; ++b) {
          uint8_t* to = dst + (g * nb + b) * group_block;
          const uint8_t* from = row + b * block;
          for_each_kquant_piece(type, b, i, [&](int64_t to_off, size_t from_off, size_t n) { std::memcpy(to + to_off, from + from_off, n); });
        }
      }
    return;
  }
  for_each_block_piece(type, rows, cols, 0, rows, [&](int64_t r, int64_t from_off, int64_t to_off, size_t n) {
    std::memcpy(dst + to_off, src + r * src_row_bytes + from_off, n);
  });
}

void interleaved_row_bytes(GgmlType type, const uint8_t* data, int64_t rows, int64_t cols, int64_t r, uint8_t* out) {
  if (is_half(type)) {
    const auto* from = reinterpret_cast<const uint16_t*>(data);
    for (int64_t i = 0; i < cols; i += kHalfStepCols)
      std::memcpy(out + i * sizeof(uint16_t), from + half_x4_index(r, i, cols), kHalfStepCols * sizeof(uint16_t));
    return;
  }
  if (is_kquant(type)) {
    const int64_t g = r / kInterleaveRows;
    const int i = static_cast<int>(r % kInterleaveRows);
    const int64_t nb = cols / kQKK, group_block = kquant_group_block_bytes(type);
    const size_t block = type_block_bytes(type);
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* from = data + (g * nb + b) * group_block;
      uint8_t* to = out + b * block;
      for_each_kquant_piece(type, b, i, [&](int64_t from_off, size_t to_off, size_t n) { std::memcpy(to + to_off, from + from_off, n); });
    }
    return;
  }
  if (quant_bytes(type) == 0) fail("interleaved_row_bytes", "type {} has no interleaved layout", ggml_type_name(type));
  for_each_block_piece(type, rows, cols, r, r + 1, [&](int64_t, int64_t row_off, int64_t tiled_off, size_t n) {
    std::memcpy(out + row_off, data + tiled_off, n);
  });
}

void dequantize_interleaved_row(GgmlType type, const uint8_t* data, int64_t rows, int64_t cols, int64_t r, float* out) {
  thread_local std::vector<uint8_t> row;  // the embedding lookup calls this per token: no allocation
  row.resize(type_row_bytes(type, cols));
  interleaved_row_bytes(type, data, rows, cols, r, row.data());
  dequantize_row(type, row.data(), out, cols);
}

}  // namespace billion::kernels
