// Forward and backward of the training ops (see ops_backward.h). Each backward is the plain
// chain rule of its forward; comments give the formula used. Work is split over rows (tokens)
// or heads with the thread pool so every output element has one writer (deterministic).
#include "train/ops_backward.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace billion::train {
namespace {

void run(ThreadPool* pool, int64_t n, const ThreadPool::RangeFn& fn, int64_t grain = 1) {
  if (pool && n > 1) pool->parallel_for(n, fn, grain);
  else fn(0, n);
}

template <typename T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

}  // namespace

template <typename T>
void rmsnorm_forward(const T* x, const float* w, T* y, T* rstd, int64_t n, int64_t h, float eps) {
  for (int64_t t = 0; t < n; ++t) {
    const T* xr = x + t * h;
    double ss = 0;
    for (int64_t i = 0; i < h; ++i) ss += double(xr[i]) * xr[i];
    T r = T(1.0 / std::sqrt(ss / double(h) + double(eps)));
    rstd[t] = r;
    for (int64_t i = 0; i < h; ++i) y[t * h + i] = xr[i] * r * T(w[i]);
  }
}

// g = dy*w; dx_i = r*g_i - x_i * r³ * mean(g·x).
template <typename T>
void rmsnorm_backward(const T* x, const float* w, const T* rstd, const T* dy, T* dx, int64_t n, int64_t h) {
  for (int64_t t = 0; t < n; ++t) {
    const T *xr = x + t * h, *dr = dy + t * h;
    const T r = rstd[t];
    double dot = 0;
    for (int64_t i = 0; i < h; ++i) dot += double(dr[i]) * w[i] * xr[i];
    const T c = T(dot / double(h)) * r * r * r;
    for (int64_t i = 0; i < h; ++i) dx[t * h + i] += r * dr[i] * T(w[i]) - xr[i] * c;
  }
}

template <typename T>
void layernorm_forward(const T* x, const float* w, const float* b, T* y, T* mean, T* rstd, int64_t n, int64_t h, float eps) {
  for (int64_t t = 0; t < n; ++t) {
    const T* xr = x + t * h;
    double m = 0, var = 0;
    for (int64_t i = 0; i < h; ++i) m += xr[i];
    m /= double(h);
    for (int64_t i = 0; i < h; ++i) var += (double(xr[i]) - m) * (double(xr[i]) - m);
    var /= double(h);
    T r = T(1.0 / std::sqrt(var + double(eps)));
    mean[t] = T(m);
    rstd[t] = r;
    for (int64_t i = 0; i < h; ++i) y[t * h + i] = (xr[i] - T(m)) * r * T(w[i]) + (b ? T(b[i]) : T(0));
  }
}

// xhat = (x-mean)*r, g = dy*w; dx = r * (g - mean(g) - xhat * mean(g·xhat)).
template <typename T>
void layernorm_backward(const T* x, const float* w, const T* mean, const T* rstd, const T* dy, T* dx, int64_t n, int64_t h) {
  for (int64_t t = 0; t < n; ++t) {
    const T *xr = x + t * h, *dr = dy + t * h;
    const T r = rstd[t], m = mean[t];
    double sg = 0, sgx = 0;
    for (int64_t i = 0; i < h; ++i) {
      double g = double(dr[i]) * w[i];
      sg += g;
      sgx += g * (double(xr[i]) - m) * r;
    }
    const T mg = T(sg / double(h)), mgx = T(sgx / double(h));
    for (int64_t i = 0; i < h; ++i) dx[t * h + i] += r * (dr[i] * T(w[i]) - mg - (xr[i] - m) * r * mgx);
  }
}

namespace {
// Rotation by +angle (forward) or -angle (backward: the transpose of a rotation).
template <typename T>
void rope_apply(T* x, int64_t n, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos, const float* sin, bool adjacent,
                T sign) {
  const int64_t half = n_rot / 2;
  for (int64_t t = 0; t < n; ++t) {
    const float *c = cos + t * half, *s = sin + t * half;
    for (int64_t hh = 0; hh < n_heads; ++hh) {
      T* v = x + (t * n_heads + hh) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const int64_t i0 = adjacent ? 2 * i : i, i1 = adjacent ? 2 * i + 1 : i + half;
        const T x0 = v[i0], x1 = v[i1], ci = T(c[i]), si = sign * T(s[i]);
        v[i0] = x0 * ci - x1 * si;
        v[i1] = x0 * si + x1 * ci;
      }
    }
  }
}
}  // namespace

template <typename T>
void rope_forward(T* x, int64_t n, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos, const float* sin, bool adjacent) {
  rope_apply(x, n, n_heads, head_dim, n_rot, cos, sin, adjacent, T(1));
}

template <typename T>
void rope_backward(T* dx, int64_t n, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos, const float* sin, bool adjacent) {
  rope_apply(dx, n, n_heads, head_dim, n_rot, cos, sin, adjacent, T(-1));
}

template <typename T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, int64_t n, int64_t nh, int64_t nkv, int64_t hd,
                       ThreadPool* pool) {
  const int64_t group = nh / nkv, qs = nh * hd, ks = nkv * hd;
  const T scale = T(1.0 / std::sqrt(double(hd)));
  run(pool, nh, [&](int64_t h0, int64_t h1) {
    std::vector<T> p(n);  // [n] scores of one query
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t g = h / group;
      for (int64_t i = 0; i < n; ++i) {
        const T* qi = q + i * qs + h * hd;
        T mx = -std::numeric_limits<T>::infinity();
        for (int64_t j = 0; j <= i; ++j) {
          const T* kj = k + j * ks + g * hd;
          T dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += qi[d] * kj[d];
          p[j] = dot * scale;
          mx = std::max(mx, p[j]);
        }
        T sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += p[j] = std::exp(p[j] - mx);
        T* oi = out + i * qs + h * hd;
        std::fill(oi, oi + hd, T(0));
        const T inv = T(1) / sum;
        for (int64_t j = 0; j <= i; ++j) {
          const T* vj = v + j * ks + g * hd;
          const T pj = p[j] * inv;
          for (int64_t d = 0; d < hd; ++d) oi[d] += pj * vj[d];
        }
        lse[h * n + i] = mx + std::log(sum);
      }
    }
  });
}

// p_ij = exp(s_ij - lse_i); D_i = dout_i·out_i; ds_ij = p_ij (dout_i·v_j - D_i);
// dq_i += scale Σ_j ds_ij k_j; dk_j += scale Σ_i ds_ij q_i; dv_j += Σ_i p_ij dout_i.
template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* out, const T* lse, const T* dout, T* dq, T* dk, T* dv,
                        int64_t n, int64_t nh, int64_t nkv, int64_t hd, ThreadPool* pool) {
  const int64_t group = nh / nkv, qs = nh * hd, ks = nkv * hd;
  const T scale = T(1.0 / std::sqrt(double(hd)));
  // One KV head per work item: it owns dk/dv of that head and dq of its query heads.
  run(pool, nkv, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        for (int64_t i = 0; i < n; ++i) {
          const T *qi = q + i * qs + h * hd, *doi = dout + i * qs + h * hd, *oi = out + i * qs + h * hd;
          T* dqi = dq + i * qs + h * hd;
          T D = 0;
          for (int64_t d = 0; d < hd; ++d) D += doi[d] * oi[d];
          const T l = lse[h * n + i];
          for (int64_t j = 0; j <= i; ++j) {
            const T *kj = k + j * ks + g * hd, *vj = v + j * ks + g * hd;
            T s = 0, dp = 0;
            for (int64_t d = 0; d < hd; ++d) {
              s += qi[d] * kj[d];
              dp += doi[d] * vj[d];
            }
            const T p = std::exp(s * scale - l);
            const T ds = p * (dp - D) * scale;
            T *dkj = dk + j * ks + g * hd, *dvj = dv + j * ks + g * hd;
            for (int64_t d = 0; d < hd; ++d) {
              dqi[d] += ds * kj[d];
              dkj[d] += ds * qi[d];
              dvj[d] += p * doi[d];
            }
          }
        }
      }
    }
  });
}

template <typename T>
void swiglu_forward(const T* g, const T* u, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = g[i] * sigmoid(g[i]) * u[i];
}

// silu'(g) = s (1 + g (1 - s)), s = sigmoid(g).
template <typename T>
void swiglu_backward(const T* g, const T* u, const T* dy, T* dg, T* du, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T s = sigmoid(g[i]);
    du[i] += dy[i] * g[i] * s;
    dg[i] += dy[i] * u[i] * s * (T(1) + g[i] * (T(1) - s));
  }
}

template <typename T>
void gelu_forward(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = T(0.5) * x[i] * (T(1) + std::erf(x[i] * T(M_SQRT1_2)));
}

// d/dx [x Φ(x)] = Φ(x) + x φ(x).
template <typename T>
void gelu_backward(const T* x, const T* dy, T* dx, int64_t n) {
  const T inv_sqrt_2pi = T(0.3989422804014327);
  for (int64_t i = 0; i < n; ++i) {
    const T cdf = T(0.5) * (T(1) + std::erf(x[i] * T(M_SQRT1_2)));
    const T pdf = inv_sqrt_2pi * std::exp(T(-0.5) * x[i] * x[i]);
    dx[i] += dy[i] * (cdf + x[i] * pdf);
  }
}

template <typename T>
void embedding_backward(const int32_t* ids, const T* dy, T* dtable, int64_t n, int64_t h) {
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < h; ++i) dtable[int64_t(ids[t]) * h + i] += dy[t * h + i];
}

template <typename T>
double cross_entropy_forward_backward(T* logits, const int32_t* targets, int64_t n, int64_t vocab, double scale, ThreadPool* pool) {
  std::vector<double> loss(n, 0.0);
  run(pool, n, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      T* row = logits + t * vocab;
      if (targets[t] < 0) {  // ignore_index: no loss, no gradient
        std::fill(row, row + vocab, T(0));
        continue;
      }
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t i = 0; i < vocab; ++i) mx = std::max(mx, double(row[i]));
      double sum = 0;
      for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(row[i]) - mx);
      const double lse = mx + std::log(sum);
      loss[t] = lse - double(row[targets[t]]);
      for (int64_t i = 0; i < vocab; ++i) row[i] = T(std::exp(double(row[i]) - lse) * scale);
      row[targets[t]] -= T(scale);
    }
  });
  double total = 0;
  for (double l : loss) total += l;
  return total;
}

template <typename T>
void lora_forward(const T* x, const T* a, const T* b, T scale, T* u, T* y, int64_t n, int64_t in, int64_t out, int64_t r,
                  ThreadPool* pool) {
  run(pool, n, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const T* xt = x + t * in;
      T* ut = u + t * r;
      for (int64_t k = 0; k < r; ++k) {
        T s = 0;
        for (int64_t i = 0; i < in; ++i) s += a[k * in + i] * xt[i];
        ut[k] = s;
      }
      T* yt = y + t * out;
      for (int64_t o = 0; o < out; ++o) {
        T s = 0;
        for (int64_t k = 0; k < r; ++k) s += b[o * r + k] * ut[k];
        yt[o] += scale * s;
      }
    }
  });
}

// du = scale · dy B [n, r]; gB += scale · dyᵀ u; gA += duᵀ x; dx += du A.
template <typename T>
void lora_backward(const T* x, const T* a, const T* b, T scale, const T* u, const T* dy, T* ga, T* gb, T* dx, int64_t n, int64_t in,
                   int64_t out, int64_t r, ThreadPool* pool) {
  std::vector<T> du(n * r);  // [n, r]
  run(pool, n, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t k = 0; k < r; ++k) {
        T s = 0;
        for (int64_t o = 0; o < out; ++o) s += dy[t * out + o] * b[o * r + k];
        du[t * r + k] = scale * s;
      }
      if (dx)
        for (int64_t k = 0; k < r; ++k) {
          const T d = du[t * r + k];
          for (int64_t i = 0; i < in; ++i) dx[t * in + i] += d * a[k * in + i];
        }
    }
  });
  run(pool, out, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o)
      for (int64_t k = 0; k < r; ++k) {
        T s = 0;
        for (int64_t t = 0; t < n; ++t) s += dy[t * out + o] * u[t * r + k];
        gb[o * r + k] += scale * s;
      }
  });
  run(pool, in, [&](int64_t i0, int64_t i1) {
    for (int64_t k = 0; k < r; ++k)
      for (int64_t t = 0; t < n; ++t) {
        const T d = du[t * r + k];
        const T* xt = x + t * in;
        T* g = ga + k * in;
        for (int64_t i = i0; i < i1; ++i) g[i] += d * xt[i];
      }
  }, 16);
}

template <typename T>
void matmul_nt(const T* x, const float* w, T* y, int64_t n, int64_t k, int64_t m, ThreadPool* pool) {
  run(pool, m, [&](int64_t m0, int64_t m1) {
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = m0; j < m1; ++j) {
        T s = 0;
        const float* wr = w + j * k;
        for (int64_t i = 0; i < k; ++i) s += x[t * k + i] * T(wr[i]);
        y[t * m + j] = s;
      }
  });
}

#define BILLION_TRAIN_OPS(T)                                                                                                       \
  template void rmsnorm_forward<T>(const T*, const float*, T*, T*, int64_t, int64_t, float);                                   \
  template void rmsnorm_backward<T>(const T*, const float*, const T*, const T*, T*, int64_t, int64_t);                         \
  template void layernorm_forward<T>(const T*, const float*, const float*, T*, T*, T*, int64_t, int64_t, float);               \
  template void layernorm_backward<T>(const T*, const float*, const T*, const T*, const T*, T*, int64_t, int64_t);             \
  template void rope_forward<T>(T*, int64_t, int64_t, int64_t, int64_t, const float*, const float*, bool);                     \
  template void rope_backward<T>(T*, int64_t, int64_t, int64_t, int64_t, const float*, const float*, bool);                    \
  template void attention_forward<T>(const T*, const T*, const T*, T*, T*, int64_t, int64_t, int64_t, int64_t, ThreadPool*);   \
  template void attention_backward<T>(const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, \
                                      int64_t, int64_t, ThreadPool*);                                                          \
  template void swiglu_forward<T>(const T*, const T*, T*, int64_t);                                                            \
  template void swiglu_backward<T>(const T*, const T*, const T*, T*, T*, int64_t);                                             \
  template void gelu_forward<T>(const T*, T*, int64_t);                                                                        \
  template void gelu_backward<T>(const T*, const T*, T*, int64_t);                                                             \
  template void embedding_backward<T>(const int32_t*, const T*, T*, int64_t, int64_t);                                         \
  template double cross_entropy_forward_backward<T>(T*, const int32_t*, int64_t, int64_t, double, ThreadPool*);                \
  template void lora_forward<T>(const T*, const T*, const T*, T, T*, T*, int64_t, int64_t, int64_t, int64_t, ThreadPool*);     \
  template void lora_backward<T>(const T*, const T*, const T*, T, const T*, const T*, T*, T*, T*, int64_t, int64_t, int64_t,   \
                                 int64_t, ThreadPool*);                                                                        \
  template void matmul_nt<T>(const T*, const float*, T*, int64_t, int64_t, int64_t, ThreadPool*);

BILLION_TRAIN_OPS(float)
BILLION_TRAIN_OPS(double)

}  // namespace billion::train
