// The interleaved layout of Q4_0 and Q8_0 weights (interleave.h): building it from a file's rows
// and reading a row back. Both formats are a 2-byte fp16 scale followed by the quant bytes.
#include "kernels/interleave.h"

#include <cstring>

#include "core/error.h"
#include "kernels/quant.h"

namespace billion::kernels {
namespace {

// Quant bytes per block and row: 16 (Q4_0) or 32 (Q8_0); 0 for a type without the layout.
size_t quant_bytes(GgmlType type) {
  return type == GgmlType::Q4_0 ? sizeof(BlockQ4_0::qs) : type == GgmlType::Q8_0 ? sizeof(BlockQ8_0::qs) : 0;
}

}  // namespace

bool can_interleave(GgmlType type, int64_t rows, int64_t cols) {
  return quant_bytes(type) > 0 && rows > 0 && rows % kInterleaveRows == 0 && cols > 0 && cols % kQK == 0;
}

void interleave_rows(GgmlType type, const uint8_t* src, size_t src_row_bytes, int64_t rows, int64_t cols,
                     uint8_t* dst) {
  if (!can_interleave(type, rows, cols))
    fail("interleave_rows", "a {}×{} {} matrix: the type must be Q4_0 or Q8_0, rows a multiple of {} and columns of {}",
         rows, cols, ggml_type_name(type), kInterleaveRows, kQK);
  const int64_t nb = cols / kQK;
  const size_t qb = quant_bytes(type), block_bytes = 2 + qb;
  const size_t group_bytes = kInterleaveRows * nb * block_bytes;
  for (int64_t g = 0; g < rows / kInterleaveRows; ++g) {
    uint8_t* scales = dst + g * group_bytes;
    uint8_t* quants = scales + interleaved_quants_offset(nb);
    for (int i = 0; i < kInterleaveRows; ++i) {
      const uint8_t* row = src + (g * kInterleaveRows + i) * src_row_bytes;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* block = row + b * block_bytes;
        std::memcpy(scales + (b * kInterleaveRows + i) * 2, block, 2);
        for (size_t s = 0; s < qb / 4; ++s)
          std::memcpy(quants + b * kInterleaveRows * qb + s * kInterleaveStepBytes + i * 4, block + 2 + 4 * s, 4);
      }
    }
  }
}

void dequantize_interleaved_row(GgmlType type, const uint8_t* data, int64_t cols, int64_t r, float* out) {
  const size_t qb = quant_bytes(type);
  if (qb == 0) fail("dequantize_interleaved_row", "type {} has no interleaved layout", ggml_type_name(type));
  const int64_t nb = cols / kQK;
  const int64_t g = r / kInterleaveRows, i = r % kInterleaveRows;
  const uint8_t* scales = data + g * kInterleaveRows * nb * (2 + qb);
  const uint8_t* quants = scales + interleaved_quants_offset(nb);
  alignas(4) uint8_t block[2 + sizeof(BlockQ8_0::qs)];  // the block structs hold a uint16_t
  for (int64_t b = 0; b < nb; ++b) {
    std::memcpy(block, scales + (b * kInterleaveRows + i) * 2, 2);
    for (size_t s = 0; s < qb / 4; ++s) std::memcpy(block + 2 + 4 * s, quants + b * kInterleaveRows * qb + s * kInterleaveStepBytes + i * 4, 4);
    dequantize_row(type, block, out + b * kQK, kQK);
  }
}

}  // namespace billion::kernels
