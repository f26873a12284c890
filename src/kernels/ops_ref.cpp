// Scalar reference versions of the forward pass's small ops (contracts in kernels.h). Softmax
// and layernorm sums accumulate in double: the reference is the "true" value the AVX2 versions
// are measured against. RMSNorm, SiLU, F16 attention and rope_ggml instead follow ggml's
// arithmetic step for step (llama.cpp parity: our quantized path gives its logits to the bit),
// and every ISA reproduces those bits.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/half.h"
#include "kernels/impl.h"

namespace billion::kernels {
namespace ref {
namespace {

// e^x as ggml's vectorised CPU code computes it (its softmax and SiLU; the AVX-512 variant, which
// adds the 1 inside the polynomial): x = n·ln2 + b, e^b by a degree-5 polynomial, times 2^n.
// Within ~1.5 ulp of exp; reproduced operation for operation so that our results are llama.cpp's.
float exp_ggml(float x) {
  const float r = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                           std::fma(0x1.ffffecp-1f, b, 1.0f));
  if (std::isnan(n)) return n;
  if (std::fabs(n) > 192.0f) return n <= 0.0f ? 0.0f : std::numeric_limits<float>::infinity();
  return std::ldexp(j, static_cast<int>(n));  // one rounding, as vscalefps
}

// Sum of 16 lanes as _mm512_reduce_add_ps pairs them: halves, quarters, then the last four.
float tree16(const float* l) {
  float t3[8], t6[4];
  for (int i = 0; i < 8; ++i) t3[i] = l[i + 8] + l[i];
  for (int i = 0; i < 4; ++i) t6[i] = t3[i + 4] + t3[i];
  return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

// Dot product of float vectors whose products are exact (f16 × f16), with additions in the given
// order (kernels.h, AttentionOrder). Blocked orders need n % 16 == 0 (Tiled) or zero padding.
float ordered_dot(const float* a, const float* b, int64_t n, AttentionOrder order) {
  float lanes[4][16] = {};
  if (order == AttentionOrder::Tiled && n % 16 == 0) {
    for (int64_t c = 0; c < n; c += 16)
      for (int l = 0; l < 16; ++l) lanes[0][l] += a[c + l] * b[c + l];
    return tree16(lanes[0]);
  }
  // ggml_vec_dot_f16: four 16-lane accumulators per 64 elements, (a0+a2)+(a1+a3), then the
  // leftover products added in double.
  const int64_t blocked = n / 64 * 64;
  for (int64_t c = 0; c < blocked; c += 64)
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 16; ++l) lanes[j][l] += a[c + 16 * j + l] * b[c + 16 * j + l];
  float x[16];
  for (int l = 0; l < 16; ++l) x[l] = (lanes[0][l] + lanes[2][l]) + (lanes[1][l] + lanes[3][l]);
  double sum = tree16(x);
  for (int64_t i = blocked; i < n; ++i) sum += static_cast<double>(a[i] * b[i]);
  return static_cast<float>(sum);
}

// ggml's soft_max: exp_ggml(x - max), summed 16 at a time (tree16) into a double, times the float
// reciprocal of the sum. x [n] in place; -inf entries become 0.
void softmax_ggml(float* x, int64_t n) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) max = std::fmax(max, x[i]);
  if (max == -std::numeric_limits<float>::infinity()) {
    for (int64_t i = 0; i < n; ++i) x[i] = 0.0f;
    return;
  }
  double sum = 0.0;
  for (int64_t c = 0; c < n; c += 16) {
    float lanes[16] = {};
    for (int64_t i = c; i < std::min(n, c + 16); ++i) lanes[i - c] = x[i] = exp_ggml(x[i] - max);
    sum += tree16(lanes);
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  // ggml's order of operations (llama.cpp parity): float squares summed in double, the mean
  // rounded to float, 1/sqrt in float, then (x * scale) * w.
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(ss / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
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
  for (int64_t i = 0; i < n; ++i) y[i] = gate[i] / (1.0f + exp_ggml(0.0f - gate[i])) * up[i];
}

void gelu(const float* x, float* y, int64_t n) {
  constexpr float kInvSqrt2 = 0.70710678118654752f;
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kInvSqrt2));
}

void add(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

namespace {
// Calls rotate(x0, x1, cos, sin, out0, out1) for every rotated pair of every head, in place.
// Neox pairs dimension i with i + half; Norm pairs 2i with 2i+1.
template <typename Rotate>
void rotate_pairs(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos, const float* sin,
                  RopeStyle style, Rotate rotate) {
  const int64_t half = n_rot / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const int64_t i0 = style == RopeStyle::Neox ? i : 2 * i;
      const int64_t i1 = style == RopeStyle::Neox ? i + half : 2 * i + 1;
      rotate(v[i0], v[i1], cos[i], sin[i], v[i0], v[i1]);
    }
  }
}
}  // namespace

void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos,
          const float* sin, RopeStyle style) {
  rotate_pairs(x, n_heads, head_dim, n_rot, cos, sin, style, [](float x0, float x1, float c, float s, float& y0, float& y1) {
    y0 = x0 * c - x1 * s;
    y1 = x0 * s + x1 * c;
  });
}

void rope_ggml(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos,
               const float* sin, RopeStyle style) {
  // Written as explicit fmas so that no compiler flag (-ffp-contract) changes the bits.
  rotate_pairs(x, n_heads, head_dim, n_rot, cos, sin, style, [](float x0, float x1, float c, float s, float& y0, float& y1) {
    y0 = std::fma(x0, c, -(x1 * s));
    y1 = std::fma(x0, s, x1 * c);
  });
}

void f32_to_f16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = billion::f32_to_f16(x[i]);
}

void f16_to_f32(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = billion::f16_to_f32(x[i]);
}

void attention_f16(const float* q, int64_t q_stride, int64_t n_q, int64_t head_dim,
                   const uint16_t* k, const uint16_t* v, int64_t kv_stride, int64_t n_pos,
                   float scale, float* out, int64_t out_stride, float* scratch, AttentionOrder order) {
  // The query and the probabilities are rounded to f16, as ggml's f16 matmul does with its
  // second operand; products of two f16 values are exact in float, so only the order of the
  // additions (AttentionOrder) decides the bits.
  thread_local std::vector<float> qh, kp, pv, vp;
  qh.resize(head_dim);
  kp.resize(head_dim);
  const int64_t padded = (n_pos + 63) / 64 * 64;  // zero probabilities past n_pos add exact zeros
  pv.assign(padded, 0.0f);
  vp.assign(padded, 0.0f);
  for (int64_t h = 0; h < n_q; ++h) {
    for (int64_t i = 0; i < head_dim; ++i) qh[i] = billion::f16_to_f32(billion::f32_to_f16(q[h * q_stride + i]));
    for (int64_t p = 0; p < n_pos; ++p) {
      for (int64_t i = 0; i < head_dim; ++i) kp[i] = billion::f16_to_f32(k[p * kv_stride + i]);
      scratch[p] = ordered_dot(qh.data(), kp.data(), head_dim, order) * scale;
    }
    softmax_ggml(scratch, n_pos);
    for (int64_t p = 0; p < n_pos; ++p) pv[p] = billion::f16_to_f32(billion::f32_to_f16(scratch[p]));
    float* o = out + h * out_stride;
    for (int64_t i = 0; i < head_dim; ++i) {
      for (int64_t p = 0; p < n_pos; ++p) vp[p] = billion::f16_to_f32(v[p * kv_stride + i]);
      o[i] = ordered_dot(pv.data(), vp.data(), padded, order);
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

void rope_tables_ggml(int64_t pos, float theta_scale, const float* factors, int64_t half, float* cos,
                      float* sin) {
  // Float throughout, as ggml: the running power θ^i accumulates one rounding per pair, which
  // is part of what llama.cpp's logits are made of.
  float theta = static_cast<float>(pos);
  for (int64_t i = 0; i < half; ++i) {
    const float angle = factors ? theta / factors[i] : theta;
    cos[i] = std::cos(angle);  // the float overloads: cosf/sinf, as ggml calls them
    sin[i] = std::sin(angle);
    theta *= theta_scale;
  }
}

}  // namespace billion::kernels
