// The CUDA kernels of the forward pass (declarations and contracts in cuda_kernels.cuh). Simple,
// exact float32 code: one block per row for reductions, one thread per element otherwise. The
// heavy work of a forward pass is in cuBLAS; these kernels are a few percent of it.
#include "gpu/cuda_kernels.cuh"

#include <cfloat>

namespace billion::gpu {
namespace {

constexpr int kBlock = 256;

int blocks_for(int64_t n) { return static_cast<int>((n + kBlock - 1) / kBlock); }

// Sum (or max) of one value per thread across the block; every thread gets the result.
template <bool kMax>
__device__ float block_reduce(float v, float* shared /* [32] */) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    float other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  __syncthreads();  // shared may still be read from a previous reduction
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : (kMax ? -FLT_MAX : 0.0f);
  for (int offset = 16; offset > 0; offset >>= 1) {
    float other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  return v;
}

__global__ void norm_kernel(const float* in, const float* w, const float* b, float* out, int width, int w_period, float eps,
                            bool layer_norm) {
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const float* x = in + row * width;
  float* y = out + row * width;
  const float* wr = w + (row % w_period) * width;
  const float* br = b ? b + (row % w_period) * width : nullptr;
  float mean = 0;
  if (layer_norm) {
    float s = 0;
    for (int i = threadIdx.x; i < width; i += blockDim.x) s += x[i];
    mean = block_reduce<false>(s, shared) / width;
  }
  float ss = 0;
  for (int i = threadIdx.x; i < width; i += blockDim.x) {
    const float d = x[i] - mean;
    ss += d * d;
  }
  const float inv = rsqrtf(block_reduce<false>(ss, shared) / width + eps);
  for (int i = threadIdx.x; i < width; i += blockDim.x) {
    const float v = (x[i] - mean) * inv * wr[i];
    y[i] = br ? v + br[i] : v;
  }
}

__global__ void add_bias_kernel(float* y, const float* bias, int64_t total, int width) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < total) y[i] += bias[i % width];
}

__global__ void add_kernel(const float* a, const float* b, float* y, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a[i] + b[i];
}

__global__ void silu_mul_kernel(const float* gate, const float* up, float* y, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) {
    const float g = gate[i];
    y[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void gelu_kernel(float* x, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

__global__ void to_half_kernel(const float* x, __half* y, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = __float2half_rn(x[i]);
}

__global__ void split_qkv_kernel(const float* qkv, float* q, float* k, float* v, int64_t total, int q_dim, int kv_dim, int head_dim,
                                 bool per_head) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int width = q_dim + 2 * kv_dim;
  const int64_t t = i / width;
  const int j = static_cast<int>(i % width);
  const float value = qkv[i];
  if (per_head) {  // [n_heads, 3, head_dim]; GPT-NeoX has kv_dim == q_dim
    const int head = j / (3 * head_dim), part = (j / head_dim) % 3, d = j % head_dim;
    float* dst = part == 0 ? q : part == 1 ? k : v;
    dst[t * (part == 0 ? q_dim : kv_dim) + head * head_dim + d] = value;
  } else if (j < q_dim) {
    q[t * q_dim + j] = value;
  } else if (j < q_dim + kv_dim) {
    k[t * kv_dim + j - q_dim] = value;
  } else {
    v[t * kv_dim + j - q_dim - kv_dim] = value;
  }
}

__global__ void rope_kernel(float* x, int64_t total, int n_heads, int head_dim, int n_rot, const float* inv_freq, int start,
                            bool half_split) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // over n × n_heads × n_rot/2
  if (i >= total) return;
  const int half = n_rot / 2;
  const int pair = static_cast<int>(i % half);
  const int64_t row = i / half;  // token × head
  const int64_t t = row / n_heads;
  // transformers: freqs = inv_freq × position in float32, then cos and sin of it.
  const float angle = static_cast<float>(start + t) * inv_freq[pair];
  float sin_a, cos_a;
  sincosf(angle, &sin_a, &cos_a);
  float* h = x + row * head_dim;
  const int i0 = half_split ? pair : 2 * pair, i1 = half_split ? pair + half : 2 * pair + 1;
  const float x0 = h[i0], x1 = h[i1];
  h[i0] = x0 * cos_a - x1 * sin_a;
  h[i1] = x1 * cos_a + x0 * sin_a;
}

// A warp per output row, 8 rows per block; each lane reads 8 consecutive weights per step (one
// 16-byte load for half, two for float), so a warp reads 256 contiguous weights at a time.
constexpr int kGemvRowsPerBlock = 8;

__device__ inline void load8(const __half* p, float* out) {
  const float4 raw = *reinterpret_cast<const float4*>(p);
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

__device__ inline void load8(const float* p, float* out) {
  const float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
  out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w, out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
}

template <typename W>
__global__ void gemv_kernel(const W* w, const float* x, const float* bias, float* y, int64_t rows, int cols) {
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kGemvRowsPerBlock + (threadIdx.x >> 5);
  if (row >= rows) return;
  const W* wr = w + row * cols;
  float acc = 0;
  for (int c = lane * 8; c < cols; c += 32 * 8) {
    float wv[8], xv[8];
    load8(wr + c, wv);
    load8(x + c, xv);
#pragma unroll
    for (int i = 0; i < 8; ++i) acc += wv[i] * xv[i];
  }
  for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
  if (lane == 0) y[row] = bias ? acc + bias[row] : acc;
}

__device__ inline float to_float(float v) { return v; }
__device__ inline float to_float(__half v) { return __half2float(v); }
template <typename Kv>
__device__ inline Kv from_float(float v);
template <>
__device__ inline float from_float<float>(float v) { return v; }
template <>
__device__ inline __half from_float<__half>(float v) { return __float2half_rn(v); }

template <typename Kv>
__global__ void store_kv_kernel(const float* k, const float* v, Kv* k_cache, Kv* v_cache, int64_t total, int kv_dim, int start) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t dst = int64_t(start) * kv_dim + i;
  k_cache[dst] = from_float<Kv>(k[i]);
  v_cache[dst] = from_float<Kv>(v[i]);
}

constexpr int kAttentionWarps = 8;

__device__ inline float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// One block per (query head, token), kAttentionWarps warps. A thread per position would read a
// whole key row serially and leave the value sum one long chain of dependent loads (decode spent
// most of its time there), so each warp takes every kAttentionWarps-th position with its lanes
// across head_dim: coalesced row reads, a shuffle sum per score, per-warp partial outputs summed
// at the end. Scores go to global scratch (the window can exceed shared memory). head_dim <= 256.
template <typename Kv>
__global__ void attention_kernel(const float* q, const Kv* k_cache, const Kv* v_cache, float* out, float* scores, int start,
                                 int n_heads, int n_kv_heads, int head_dim, float scale) {
  __shared__ float q_shared[256];
  __shared__ float partial[kAttentionWarps][256];
  __shared__ float shared[32];
  const int h = blockIdx.x, t = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int n_pos = start + t + 1, window = start + gridDim.y;
  const int kv_dim = n_kv_heads * head_dim, q_dim = n_heads * head_dim;
  const int g = h / (n_heads / n_kv_heads);
  const float* qh = q + int64_t(t) * q_dim + int64_t(h) * head_dim;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) q_shared[d] = qh[d];
  __syncthreads();
  float* s = scores + (int64_t(t) * n_heads + h) * window;
  const Kv* k_head = k_cache + int64_t(g) * head_dim;
  const Kv* v_head = v_cache + int64_t(g) * head_dim;

  float local_max = -FLT_MAX;
  for (int p = warp; p < n_pos; p += kAttentionWarps) {
    const Kv* kp = k_head + int64_t(p) * kv_dim;
    float dot = 0;
    for (int d = lane; d < head_dim; d += 32) dot += q_shared[d] * to_float(kp[d]);
    dot = warp_sum(dot) * scale;
    if (lane == 0) s[p] = dot;
    local_max = fmaxf(local_max, dot);
  }
  const float m = block_reduce<true>(local_max, shared);  // its __syncthreads publish s
  float local_sum = 0;
  for (int p = threadIdx.x; p < n_pos; p += blockDim.x) {
    const float e = expf(s[p] - m);
    s[p] = e;
    local_sum += e;
  }
  const float inv_sum = 1.0f / block_reduce<false>(local_sum, shared);

  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // dims lane + 32 i
  for (int p = warp; p < n_pos; p += kAttentionWarps) {
    const float w = s[p];
    const Kv* vp = v_head + int64_t(p) * kv_dim;
#pragma unroll
    for (int i = 0; i < 8; ++i)
      if (lane + 32 * i < head_dim) acc[i] += w * to_float(vp[lane + 32 * i]);
  }
#pragma unroll
  for (int i = 0; i < 8; ++i)
    if (lane + 32 * i < head_dim) partial[warp][lane + 32 * i] = acc[i];
  __syncthreads();
  float* oh = out + int64_t(t) * q_dim + int64_t(h) * head_dim;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0;
    for (int w = 0; w < kAttentionWarps; ++w) sum += partial[w][d];
    oh[d] = sum * inv_sum;
  }
}

}  // namespace

void launch_norm(const float* in, const float* w, const float* b, float* out, int64_t rows, int width, int w_period, float eps,
                 bool layer_norm, cudaStream_t s) {
  if (rows > 0) norm_kernel<<<static_cast<unsigned>(rows), kBlock, 0, s>>>(in, w, b, out, width, w_period, eps, layer_norm);
}

void launch_add_bias(float* y, const float* bias, int64_t rows, int width, cudaStream_t s) {
  const int64_t total = rows * width;
  if (total > 0) add_bias_kernel<<<blocks_for(total), kBlock, 0, s>>>(y, bias, total, width);
}

void launch_add(const float* a, const float* b, float* y, int64_t n, cudaStream_t s) {
  if (n > 0) add_kernel<<<blocks_for(n), kBlock, 0, s>>>(a, b, y, n);
}

void launch_silu_mul(const float* gate, const float* up, float* y, int64_t n, cudaStream_t s) {
  if (n > 0) silu_mul_kernel<<<blocks_for(n), kBlock, 0, s>>>(gate, up, y, n);
}

void launch_gelu(float* x, int64_t n, cudaStream_t s) {
  if (n > 0) gelu_kernel<<<blocks_for(n), kBlock, 0, s>>>(x, n);
}

void launch_to_half(const float* x, __half* y, int64_t n, cudaStream_t s) {
  if (n > 0) to_half_kernel<<<blocks_for(n), kBlock, 0, s>>>(x, y, n);
}

void launch_split_qkv(const float* qkv, float* q, float* k, float* v, int64_t n, int q_dim, int kv_dim, int head_dim, bool per_head,
                      cudaStream_t s) {
  const int64_t total = n * (q_dim + 2 * int64_t(kv_dim));
  if (total > 0) split_qkv_kernel<<<blocks_for(total), kBlock, 0, s>>>(qkv, q, k, v, total, q_dim, kv_dim, head_dim, per_head);
}

void launch_rope(float* x, int64_t n, int n_heads, int head_dim, int n_rot, const float* inv_freq, int start, bool half_split,
                 cudaStream_t s) {
  const int64_t total = n * n_heads * (n_rot / 2);
  if (total > 0) rope_kernel<<<blocks_for(total), kBlock, 0, s>>>(x, total, n_heads, head_dim, n_rot, inv_freq, start, half_split);
}

template <typename Kv>
void launch_store_kv(const float* k, const float* v, Kv* k_cache, Kv* v_cache, int64_t n, int kv_dim, int start, cudaStream_t s) {
  const int64_t total = n * kv_dim;
  if (total > 0) store_kv_kernel<Kv><<<blocks_for(total), kBlock, 0, s>>>(k, v, k_cache, v_cache, total, kv_dim, start);
}

template <typename Kv>
void launch_attention(const float* q, const Kv* k_cache, const Kv* v_cache, float* out, float* scores, int64_t n, int start, int n_heads,
                      int n_kv_heads, int head_dim, float scale, cudaStream_t s) {
  if (n <= 0) return;
  dim3 grid(n_heads, static_cast<unsigned>(n));
  attention_kernel<Kv><<<grid, 32 * kAttentionWarps, 0, s>>>(q, k_cache, v_cache, out, scores, start, n_heads, n_kv_heads, head_dim, scale);
}

template <typename W>
void launch_gemv(const W* w, const float* x, const float* bias, float* y, int64_t rows, int cols, cudaStream_t s) {
  const int64_t blocks = (rows + kGemvRowsPerBlock - 1) / kGemvRowsPerBlock;
  if (rows > 0) gemv_kernel<W><<<static_cast<unsigned>(blocks), 32 * kGemvRowsPerBlock, 0, s>>>(w, x, bias, y, rows, cols);
}

template void launch_gemv<__half>(const __half*, const float*, const float*, float*, int64_t, int, cudaStream_t);
template void launch_gemv<float>(const float*, const float*, const float*, float*, int64_t, int, cudaStream_t);
template void launch_store_kv<float>(const float*, const float*, float*, float*, int64_t, int, int, cudaStream_t);
template void launch_store_kv<__half>(const float*, const float*, __half*, __half*, int64_t, int, int, cudaStream_t);
template void launch_attention<float>(const float*, const float*, const float*, float*, float*, int64_t, int, int, int, int, float,
                                      cudaStream_t);
template void launch_attention<__half>(const float*, const __half*, const __half*, float*, float*, int64_t, int, int, int, int, float,
                                       cudaStream_t);

}  // namespace billion::gpu
