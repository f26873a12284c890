// Test data shared by the kernel tests (test_kernels.cpp, test_interleave.cpp): Gaussian
// activations and weight matrices of every type the matmul runs.
#pragma once
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "kernels/quant.h"

namespace billion::testing {

inline std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// A weight matrix in `type`: float types and the 32-element formats are quantized from
// Gaussian rows; K-quants are random blocks with finite scales (we have no K-quantizer).
inline std::vector<uint8_t> make_weights(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  const size_t rb = kernels::type_row_bytes(type, cols);
  std::vector<uint8_t> w(rb * rows);
  if (type == GgmlType::Q4_K || type == GgmlType::Q5_K || type == GgmlType::Q6_K) {
    std::mt19937 rng(seed);
    for (auto& b : w) b = static_cast<uint8_t>(rng());
    std::uniform_real_distribution<float> scale(1e-3f, 2e-2f);
    const size_t bb = kernels::type_block_bytes(type);
    for (size_t off = 0; off < w.size(); off += bb) {
      const uint16_t d = f32_to_f16(scale(rng)), dmin = f32_to_f16(scale(rng));
      if (type == GgmlType::Q6_K) {
        std::memcpy(&w[off + 208], &d, 2);
      } else {
        std::memcpy(&w[off], &d, 2);
        std::memcpy(&w[off + 2], &dmin, 2);
      }
    }
    return w;
  }
  auto x = gaussian(static_cast<size_t>(rows * cols), seed, 0.05f);
  for (int64_t r = 0; r < rows; ++r) kernels::quantize_row(type, x.data() + r * cols, w.data() + r * rb, cols);
  return w;
}

}  // namespace billion::testing
