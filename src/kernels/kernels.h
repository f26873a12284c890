// The kernel layer's interface: the matmul the model calls for every weight type, and the small
// ops of a transformer forward pass. Every kernel has a scalar reference (kept forever, the
// definition of correct) and, where it pays, an AVX2/FMA/F16C version; one KernelTable per ISA
// holds them and src/kernels/dispatch.cpp picks the table once, from the CPU features
// (BILLION_KERNELS=scalar forces the reference). Tests ask for each table by ISA.
//
// Conventions: row-major, float32 activations; shapes in comments as [outer, inner].
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "formats/ggml_types.h"

namespace billion::kernels {

// How a weight matrix's rows lie in memory.
enum class WeightLayout {
  Rows,           // row r is row_bytes bytes at data + r*row_bytes: the file's layout
  Interleaved16,  // Q4_0, Q8_0, Q4_K or Q6_K rows interleaved in groups of 16, F16 or BF16 rows
                  // in runs of 4 (kernels/interleave.h),
                  // built at load for the kernels that want it; read a row with dequantize_weight_row
  // Q8_0 or Q4_1 in Interleaved16's bytes, multiplied in ggml's vec_dot order (per row eight
  // lanes of four products, an fma per block and lane, then ggml's eight-lane sum; Q4_1's minimum
  // terms apart): the bits of the plain layout's SIMD tiles, so llama.cpp's. For a tied Q8_0
  // output matrix (SmolLM2, Llama-3.2 Q8_0), read for every token, and Q4_1 matrices (SmolLM2),
  // whose logits stay bit-identical to llama.cpp's.
  Interleaved16Ggml,
};
inline bool is_interleaved(WeightLayout layout) { return layout != WeightLayout::Rows; }

// A weight matrix [rows, cols] left where it lies (usually the mmap of a GGUF file) or re-laid
// at load: `cols` elements of `type` per row. A PyTorch Linear weight [out, in] is rows = out,
// cols = in (GGUF dims [in, out]).
struct WeightView {
  GgmlType type = GgmlType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes = 0;  // type_row_bytes(type, cols) for a dense tensor
  WeightLayout layout = WeightLayout::Rows;

  // Row r in the Rows layout; interleaved, with r a multiple of 16, the start of r's group.
  const uint8_t* row(int64_t r) const { return static_cast<const uint8_t*>(data) + r * row_bytes; }
};

// Row r of any layout as floats, out [w.cols] (the values dequantize_row gives for the row).
void dequantize_weight_row(const WeightView& w, int64_t r, float* out);

// Avx512 means AVX-512 F/BW/VL/DQ with VNNI (Zen 4, Ice Lake and later), on top of AVX2/FMA/F16C.
enum class Isa { Scalar, Avx2, Avx512 };
const char* isa_name(Isa isa);

enum class RopeStyle {
  Neox,  // HF half-split: pairs (x[i], x[i + n_rot/2]) — GPT-NeoX, StableLM, HF Llama
  Norm,  // GGUF/Meta adjacent pairs (x[2i], x[2i+1]) — llama.cpp's LLAMA_ROPE_TYPE_NORM
};

// Computes y[t, r] for r in [0, n_rows), t in [0, n_tok): the dot product of weight row r
// (w + r*w_row_bytes, `cols` elements of the type) with activation row t (act + t*act_row_bytes,
// in the activation format of the type: float for F32/F16/BF16, BlockQ8A for the 32-element
// quants — followed by the row's int32 block sums for the interleaved kernels, see
// kernels/interleave.h — BlockQ8K for K-quants; for mm_q8_0x16_tokens16, the token tiles of
// kernels/interleave.h, act at the tile of token 0). y[t, r] is y[t*y_stride + r]. The arithmetic for one (r, t)
// does not depend on n_rows, n_tok or the pair's position in a tile, which is what makes
// results independent of the thread count.
using MatmulTileFn = void (*)(const uint8_t* w, size_t w_row_bytes, int64_t n_rows,
                              const void* act, size_t act_row_bytes, int64_t n_tok,
                              float* y, int64_t y_stride, int64_t cols);

// The summation orders of attention_f16, both ggml's (llama.cpp parity, bit for bit): Tiled is
// its batched f16 matmul (16 lanes over head_dim for q·k and over positions for p·v, lane sums
// in sequence, then a pairwise tree), Vec its single-row ggml_vec_dot_f16 (four such 16-lane
// accumulators per 64 elements). llama.cpp uses Vec for a one-token step and Tiled for a batch.
enum class AttentionOrder { Tiled, Vec };

struct KernelTable {
  Isa isa = Isa::Scalar;

  // One entry per weight type; null where the type has no kernel. Use matmul() below.
  MatmulTileFn mm_f32, mm_f16, mm_bf16, mm_q8_0, mm_q4_0, mm_q4_1, mm_q5_0, mm_q5_1;
  MatmulTileFn mm_q4_k, mm_q5_k, mm_q6_k;
  // Q4_0, Q8_0, Q4_K and Q6_K in the Interleaved16 layout (n_rows a multiple of 16, w the start
  // of a group). Every table has them; interleave_at_load says whether this table's Q4_0/Q8_0
  // ones are fast enough that the loader should re-lay those matrices for it,
  // interleave_q4_k_at_load and interleave_q6_k_at_load the same for Q4_K and Q6_K (see
  // kernels/interleave.h and wants_interleaved below).
  MatmulTileFn mm_q4_0x16, mm_q8_0x16, mm_q4_kx16, mm_q6_kx16;
  // Optional: interleaved Q8_0 × Q8A token tiles (kernels/interleave.h), the same bits as
  // mm_q8_0x16; where present the driver uses it for batches of at least kTokenTile tokens.
  MatmulTileFn mm_q8_0x16_tokens16 = nullptr;
  bool interleave_at_load;
  bool interleave_q4_k_at_load;
  bool interleave_q6_k_at_load;
  // Q8_0 and Q4_1 in the Interleaved16Ggml layout; interleave_q8_0_ggml_at_load: the loader
  // should re-lay a tied Q8_0 output matrix so for this table; interleave_q4_1_ggml_at_load: the
  // same for every Q4_1 matrix.
  MatmulTileFn mm_q8_0x16_ggml, mm_q4_1x16_ggml;
  bool interleave_q8_0_ggml_at_load;
  bool interleave_q4_1_ggml_at_load;
  // F16 and BF16 in the Interleaved16 layout (runs of four rows, n_rows a multiple of 4, w the
  // start of a run), each with the bits of the table's plain mm_f16 / mm_bf16;
  // interleave_half_at_load: the loader should re-lay F16/BF16 matrices for this table.
  MatmulTileFn mm_f16x4, mm_bf16x4;
  bool interleave_half_at_load;
  // Activation quantizers: x [n] → n/32 BlockQ8A (n % 32 == 0), n/256 BlockQ8K (n % 256 == 0).
  // Every ISA produces the same bytes as the scalar reference.
  void (*quantize_q8a)(const float* x, void* y, int64_t n);
  void (*quantize_q8k)(const float* x, void* y, int64_t n);

  // y[i] = x[i] / sqrt(mean(x²) + eps) * w[i]; x, w, y [n]; y may alias x. ggml's order: float
  // squares summed in double, mean rounded to float, 1/sqrtf; every ISA gives the same bits.
  void (*rmsnorm)(const float* x, const float* w, float* y, int64_t n, float eps);
  // y[i] = (x[i] - mean) / sqrt(var + eps) * w[i] + b[i] (biased variance, as torch); b may be null.
  void (*layernorm)(const float* x, const float* w, const float* b, float* y, int64_t n, float eps);
  // In place, x [n]: x[i] = exp(x[i] - max) / sum; -inf entries (masked) become 0.
  void (*softmax)(float* x, int64_t n);
  // SwiGLU: y[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)); y may alias gate or up.
  // exp is ggml's polynomial (within ~1.5 ulp); every ISA gives the same bits.
  void (*silu_mul)(const float* gate, const float* up, float* y, int64_t n);
  // y[i] = x[i]/2 * (1 + erf(x[i]/sqrt(2))) — exact GELU (torch's default, not tanh); may alias.
  void (*gelu)(const float* x, float* y, int64_t n);
  // y[i] = a[i] + b[i]; y may alias a or b.
  void (*add)(const float* a, const float* b, float* y, int64_t n);
  // Rotary embedding of one token in place: x [n_heads, head_dim]; the first n_rot dims of each
  // head rotate (partial rotary), the rest pass through. cos, sin [n_rot/2]: cos(pos*freq[i]),
  // sin(pos*freq[i]) for this token's position (rope_cos_sin builds them).
  void (*rope)(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos,
               const float* sin, RopeStyle style);
  // The same rotation with ggml's rounding (llama.cpp parity, the F16-cache path; tables from
  // rope_tables_ggml): ggml's compiler contracts x0·cos − x1·sin into fma(x0, cos, −(x1·sin))
  // and x0·sin + x1·cos into fma(x0, sin, x1·cos), so one product is rounded and the other not.
  // Every ISA gives the reference's bits.
  void (*rope_ggml)(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos,
                    const float* sin, RopeStyle style);
  // Row conversions for the F16 KV cache (round to nearest even; overflow → ±inf).
  void (*f32_to_f16)(const float* x, uint16_t* y, int64_t n);
  void (*f16_to_f32)(const uint16_t* x, float* y, int64_t n);
  // Attention of one query token for one KV head and the n_q query heads sharing it (GQA):
  //   q [n_q, head_dim] (row stride q_stride floats); k, v: the cache, position p's vector at
  //   k + p*kv_stride (f16, head_dim values), p in [0, n_pos) — the caller's causal window;
  //   out [n_q, head_dim] (row stride out_stride); scratch [n_pos] floats.
  //   out[h] = sum_p softmax_p(scale * q[h]·k[p]) v[p], with ggml's arithmetic: q and the
  //   probabilities rounded to f16, its exp and softmax, sums in `order`. Every ISA gives the
  //   reference's bits.
  void (*attention_f16)(const float* q, int64_t q_stride, int64_t n_q, int64_t head_dim,
                        const uint16_t* k, const uint16_t* v, int64_t kv_stride, int64_t n_pos,
                        float scale, float* out, int64_t out_stride, float* scratch,
                        AttentionOrder order);
};

// The table in use: the best the CPU supports, or the reference when BILLION_KERNELS=scalar.
// Chosen on first call; thread-safe.
const KernelTable& active_kernels();
// A specific ISA's table, or null if it is not compiled in or the CPU lacks it (for tests).
const KernelTable* kernels_for(Isa isa);
// The ISAs this CPU can run, reference first.
std::vector<Isa> available_isas();

// y [n_tokens, w.rows] = x [n_tokens, w.cols] · wᵀ, with the active table. For quantized
// weights the activations are quantized once per call (to Q8A or Q8K) and the dot products are
// integer; float weights use float FMA. Rows are split across the pool's threads.
// Requirements: w.cols a multiple of the type's block size; w.type weight_type_supported().
void matmul(const WeightView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool);
// The same with an explicit table (tests and benchmarks).
void matmul(const KernelTable& k, const WeightView& w, const float* x, float* y,
            int64_t n_tokens, ThreadPool& pool);
// ys[i] [n_tokens, ws[i].rows] = x [n_tokens, cols] · ws[i]ᵀ for every i: several matrices
// applied to the same input (q/k/v, gate/up), with the activations quantized once per format
// and the row chunks of all matrices shared out in one parallel region (one barrier instead of
// one per matrix, which is what a decode step mostly waits on). Every output equals matmul()'s
// bit for bit. All ws[i].cols must be equal; types may differ; ys.size() == ws.size().
void matmul_many(std::span<const WeightView> ws, const float* x, std::span<float* const> ys,
                 int64_t n_tokens, ThreadPool& pool);
void matmul_many(const KernelTable& k, std::span<const WeightView> ws, const float* x,
                 std::span<float* const> ys, int64_t n_tokens, ThreadPool& pool);

// cos/sin tables of one position: cos[i] = cos(pos * inv_freq[i]), i < half (= n_rot/2).
// inv_freq[i] = base^(-2i/n_rot), divided by any rope scaling (llama3, linear) by the caller.
void rope_cos_sin(int64_t pos, const float* inv_freq, int64_t half, float* cos, float* sin);
// ggml's tables of one position (llama.cpp parity, for rope_ggml): the angle of pair i is
// pos·θ^i with θ = theta_scale = base^(-2/n_rot) in float, multiplied up one pair at a time in
// float (not pos·inv_freq as transformers does), then divided by factors[i] when factors is not
// null (rope scaling shipped as per-pair divisors, GGUF rope_freqs); cosf/sinf of it.
void rope_tables_ggml(int64_t pos, float theta_scale, const float* factors, int64_t half, float* cos,
                      float* sin);

// True when the loader should re-lay a matrix of this type (Q4_0, Q8_0, Q4_K, Q6_K, F16, BF16)
// and shape in the Interleaved16 layout for table k: the table's interleaved kernel for the type
// is fast (its *_at_load flag) and can_interleave holds.
bool wants_interleaved(const KernelTable& k, GgmlType type, int64_t rows, int64_t cols);

// The scalar, AVX2 and AVX-512 tables (built in dispatch.cpp; use the functions above).
const KernelTable& scalar_kernel_table();
const KernelTable& avx2_kernel_table();
const KernelTable& avx512_kernel_table();

}  // namespace billion::kernels
