// The matmul driver: checks the weight view, quantizes the activations once per call (Q8A for
// the 32-element formats, Q8K for K-quants), hands the weight rows out to the pool's threads in
// small chunks and walks the tokens in chunks, calling the table's tile kernel.
// ISA-independent; the table decides.
#include <algorithm>
#include <atomic>
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

// Rows are handed out in chunks from a shared counter rather than split in equal halves: on a
// shared machine one thread is often descheduled or slowed by another process, and with a
// static split the other thread then idles at the end of every matmul (perf showed ~24 % of
// decode time spinning in the pool). About 16 chunks per thread balance that at the cost of one
// atomic add per chunk. A chunk is a multiple of the 4-row tile and at most 256 rows, so for
// prefill its weights (≤ 256 × 5632 Q8_0 = 1.5 MB, usually far less) are reused from cache by
// every token chunk. Which thread computes a row never changes its value: every (row, token)
// goes through the same arithmetic in any tile, so results stay identical for any thread count.
constexpr int64_t kChunksPerThread = 16;
constexpr int64_t kMaxChunkRows = 256;

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

  // Token chunks are a multiple of the widest token tile (4).
  const int64_t chunk = std::min(std::max<int64_t>(static_cast<int64_t>(kActChunkBytes / act_row_bytes) & ~int64_t{3}, 4), n_tokens);
  const auto* a = static_cast<const uint8_t*>(act);
  const int64_t threads = pool.size();
  const int64_t row_chunk = std::clamp<int64_t>((w.rows / (threads * kChunksPerThread)) & ~int64_t{3}, 4, kMaxChunkRows);
  std::atomic<int64_t> next_row{0};
  pool.parallel_for(threads, [&](int64_t, int64_t) {
    for (;;) {
      const int64_t r0 = next_row.fetch_add(row_chunk, std::memory_order_relaxed);
      if (r0 >= w.rows) return;
      const int64_t r1 = std::min(r0 + row_chunk, w.rows);
      for (int64_t t0 = 0; t0 < n_tokens; t0 += chunk) {
        const int64_t nt = std::min(chunk, n_tokens - t0);
        tk.fn(w.row(r0), w.row_bytes, r1 - r0, a + t0 * act_row_bytes, act_row_bytes, nt,
              y + t0 * w.rows + r0, w.rows, w.cols);
      }
    }
  });
}

void matmul(const WeightView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  matmul(active_kernels(), w, x, y, n_tokens, pool);
}

}  // namespace billion::kernels
