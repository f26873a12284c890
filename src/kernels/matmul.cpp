// The matmul driver: checks the weight view, quantizes the activations once per call (Q8A for
// the 32-element formats, Q8K for K-quants), splits the weight rows across the pool and walks
// the tokens in chunks, calling the table's tile kernel. ISA-independent; the table decides.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "kernels/impl.h"

namespace billion::kernels {
namespace {

enum class ActKind { F32, Q8A, Q8K };

struct TypeKernel {
  MatmulTileFn fn;
  ActKind act;
};

TypeKernel kernel_for(const KernelTable& k, GgmlType type) {
  switch (type) {
    case GgmlType::F32: return {k.mm_f32, ActKind::F32};
    case GgmlType::F16: return {k.mm_f16, ActKind::F32};
    case GgmlType::BF16: return {k.mm_bf16, ActKind::F32};
    case GgmlType::Q8_0: return {k.mm_q8_0, ActKind::Q8A};
    case GgmlType::Q4_0: return {k.mm_q4_0, ActKind::Q8A};
    case GgmlType::Q4_1: return {k.mm_q4_1, ActKind::Q8A};
    case GgmlType::Q5_0: return {k.mm_q5_0, ActKind::Q8A};
    case GgmlType::Q5_1: return {k.mm_q5_1, ActKind::Q8A};
    case GgmlType::Q4_K: return {k.mm_q4_k, ActKind::Q8K};
    case GgmlType::Q5_K: return {k.mm_q5_k, ActKind::Q8K};
    case GgmlType::Q6_K: return {k.mm_q6_k, ActKind::Q8K};
    default: return {nullptr, ActKind::F32};
  }
}

// Activations of one token chunk should stay in L2 (512 KiB per core on Zen 3) while every row
// group of the thread's share streams past them; a row group (4 rows) stays in L1.
constexpr size_t kActChunkBytes = 192 * 1024;

}  // namespace

void matmul(const KernelTable& k, const WeightView& w, const float* x, float* y,
            int64_t n_tokens, ThreadPool& pool) {
  const TypeKernel tk = kernel_for(k, w.type);
  if (!tk.fn) fail("matmul", "weight type {} is not supported", ggml_type_name(w.type));
  const int be = type_block_elements(w.type);
  if (w.cols % be != 0)
    fail("matmul", "{} weight with {} columns: not a multiple of the block size {}", ggml_type_name(w.type), w.cols, be);
  if (w.row_bytes < type_row_bytes(w.type, w.cols))
    fail("matmul", "{} weight row stride {} < {} bytes", ggml_type_name(w.type), w.row_bytes, type_row_bytes(w.type, w.cols));
  if (n_tokens <= 0 || w.rows <= 0) return;

  // Quantized activations live in a per-thread buffer reused across calls (no allocation in
  // the steady state of a decode loop).
  thread_local std::vector<uint8_t> scratch;
  const void* act = x;
  size_t act_row_bytes = static_cast<size_t>(w.cols) * sizeof(float);
  if (tk.act != ActKind::F32) {
    act_row_bytes = tk.act == ActKind::Q8A ? w.cols / kQK * sizeof(BlockQ8A) : w.cols / kQKK * sizeof(BlockQ8K);
    scratch.resize(act_row_bytes * n_tokens);
    uint8_t* buf = scratch.data();
    auto quantize = tk.act == ActKind::Q8A ? k.quantize_q8a : k.quantize_q8k;
    const int64_t cols = w.cols;
    pool.parallel_for(n_tokens, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) quantize(x + t * cols, buf + t * act_row_bytes, cols);
    });
    act = buf;
  }

  const int64_t chunk = std::clamp<int64_t>(static_cast<int64_t>(kActChunkBytes / act_row_bytes) & ~int64_t{1}, 2, n_tokens);
  const auto* a = static_cast<const uint8_t*>(act);
  pool.parallel_for(w.rows, [&](int64_t r0, int64_t r1) {
    for (int64_t t0 = 0; t0 < n_tokens; t0 += chunk) {
      const int64_t nt = std::min(chunk, n_tokens - t0);
      tk.fn(w.row(r0), w.row_bytes, r1 - r0, a + t0 * act_row_bytes, act_row_bytes, nt,
            y + t0 * w.rows + r0, w.rows, w.cols);
    }
  }, /*grain=*/4);
}

void matmul(const WeightView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  matmul(active_kernels(), w, x, y, n_tokens, pool);
}

}  // namespace billion::kernels
