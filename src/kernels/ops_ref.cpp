// Scalar reference versions of the forward pass's small ops (contracts in kernels.h). Sums of
// squares and softmax sums accumulate in double here: the reference is the "true" value the
// AVX2 versions are measured against, so it should not carry float summation error itself.
#include <cmath>
#include <limits>

#include "core/half.h"
#include "kernels/impl.h"

namespace billion::kernels {
namespace ref {

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void layernorm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps) {
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= n;
  double var = 0.0;
  for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= n;
  const double inv = 1.0 / std::sqrt(var + eps);
  for (int64_t i = 0; i < n; ++i) {
    const float v = static_cast<float>((x[i] - mean) * inv) * w[i];
    y[i] = b ? v + b[i] : v;
  }
}

void softmax(float* x, int64_t n) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) max = std::fmax(max, x[i]);
  if (max == -std::numeric_limits<float>::infinity()) {  // everything masked: all zero
    for (int64_t i = 0; i < n; ++i) x[i] = 0.0f;
    return;
  }
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_mul(const float* gate, const float* up, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void gelu(const float* x, float* y, int64_t n) {
  constexpr float kInvSqrt2 = 0.70710678118654752f;
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kInvSqrt2));
}

void add(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos,
          const float* sin, RopeStyle style) {
  const int64_t half = n_rot / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      // Neox pairs dimension i with i + half; Norm pairs 2i with 2i+1.
      const int64_t i0 = style == RopeStyle::Neox ? i : 2 * i;
      const int64_t i1 = style == RopeStyle::Neox ? i + half : 2 * i + 1;
      const float x0 = v[i0], x1 = v[i1];
      v[i0] = x0 * cos[i] - x1 * sin[i];
      v[i1] = x0 * sin[i] + x1 * cos[i];
    }
  }
}

void f32_to_f16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = billion::f32_to_f16(x[i]);
}

void f16_to_f32(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = billion::f16_to_f32(x[i]);
}

void attention_f16(const float* q, int64_t q_stride, int64_t n_q, int64_t head_dim,
                   const uint16_t* k, const uint16_t* v, int64_t kv_stride, int64_t n_pos,
                   float scale, float* out, int64_t out_stride, float* scratch) {
  for (int64_t h = 0; h < n_q; ++h) {
    const float* qh = q + h * q_stride;
    for (int64_t p = 0; p < n_pos; ++p) {
      const uint16_t* kp = k + p * kv_stride;
      float dot = 0.0f;
      for (int64_t i = 0; i < head_dim; ++i) dot += qh[i] * billion::f16_to_f32(kp[i]);
      scratch[p] = dot * scale;
    }
    softmax(scratch, n_pos);
    float* o = out + h * out_stride;
    for (int64_t i = 0; i < head_dim; ++i) o[i] = 0.0f;
    for (int64_t p = 0; p < n_pos; ++p) {
      const uint16_t* vp = v + p * kv_stride;
      for (int64_t i = 0; i < head_dim; ++i) o[i] += scratch[p] * billion::f16_to_f32(vp[i]);
    }
  }
}

}  // namespace ref

void rope_cos_sin(int64_t pos, const float* inv_freq, int64_t half, float* cos, float* sin) {
  for (int64_t i = 0; i < half; ++i) {
    // The angle is a float product, as transformers computes it (inv_freq @ position_ids in
    // float32), so the tables match the PyTorch reference; cos/sin of it are then exact.
    const float angle = static_cast<float>(pos) * inv_freq[i];
    cos[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
    sin[i] = static_cast<float>(std::sin(static_cast<double>(angle)));
  }
}

}  // namespace billion::kernels
