// The matmul driver: checks the weight views, quantizes the activations once per call (Q8A for
// the 32-element formats, Q8K for K-quants) for every matrix of the call, hands the weight rows
// of all matrices out to the pool's threads in small chunks and walks the tokens in chunks,
// calling the table's tile kernel.
// ISA-independent; the table decides.
#include <algorithm>
#include <atomic>
#include <span>
#include <vector>

#include "core/error.h"
#include "kernels/impl.h"
#include "kernels/interleave.h"

namespace billion::kernels {
namespace {

// Q8AT: Q8A in token tiles (interleave.h), made from the Q8A rows.
enum class ActKind { F32, Q8A, Q8K, Q8AT };

struct TypeKernel {
  MatmulTileFn fn;
  ActKind act;
  bool block_sums = false;  // Q8A rows followed by their int32 block sums (q8a_block_sums)
};

TypeKernel kernel_for(const KernelTable& k, const WeightView& w, int64_t n_tokens) {
  if (w.layout == WeightLayout::Interleaved16Ggml)
    return {w.type == GgmlType::Q8_0 ? k.mm_q8_0x16_ggml : w.type == GgmlType::Q4_1 ? k.mm_q4_1x16_ggml : nullptr, ActKind::Q8A};
  if (w.layout == WeightLayout::Interleaved16) {
    if (w.type == GgmlType::Q4_K) return {k.mm_q4_kx16, ActKind::Q8K};
    if (w.type == GgmlType::Q6_K) return {k.mm_q6_kx16, ActKind::Q8K};
    if (w.type == GgmlType::F16) return {k.mm_f16x4, ActKind::F32};
    if (w.type == GgmlType::BF16) return {k.mm_bf16x4, ActKind::F32};
    // Below a whole token tile the padding would cost more than the tile gains.
    if (w.type == GgmlType::Q8_0 && k.mm_q8_0x16_tokens16 && n_tokens >= kTokenTile)
      return {k.mm_q8_0x16_tokens16, ActKind::Q8AT};
    return {w.type == GgmlType::Q4_0 ? k.mm_q4_0x16 : w.type == GgmlType::Q8_0 ? k.mm_q8_0x16 : nullptr, ActKind::Q8A, true};
  }
  switch (w.type) {
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

// The block sums the interleaved kernels read (q8a_block_sums), after the row's nb blocks.
void write_block_sums(uint8_t* row, int64_t nb) {
  const auto* a = reinterpret_cast<const BlockQ8A*>(row);
  auto* sums = reinterpret_cast<int32_t*>(row + nb * sizeof(BlockQ8A));
  for (int64_t b = 0; b < nb; ++b) {
    int32_t s = 0;
    for (int j = 0; j < kQK; ++j) s += a[b].qs[j];
    sums[b] = s;
  }
}

// Activations of one token chunk should stay in L2 (512 KiB per core on Zen 3) while every row
// group of the thread's share streams past them; a row group (4 rows) stays in L1.
constexpr size_t kActChunkBytes = 192 * 1024;
// Token tiles (ActKind::Q8AT) go in larger chunks: their tile kernel passes over each 16-row
// group once per chunk, and that pass reads the group from memory. 1 MiB (240 tokens at 2048
// columns) was as fast as 512 KiB and 2 MiB and faster than whole 512-token batches in trial
// runs (bench_kernels, TinyLlama shapes, on the Intel Xeon VM of docs/PERFORMANCE.md).
constexpr size_t kTokenTileChunkBytes = 1024 * 1024;

// Rows are handed out in chunks from a shared counter rather than split in equal halves: on a
// shared machine one thread is often descheduled or slowed by another process, and with a
// static split the other thread then idles at the end of every matmul (perf showed ~24 % of
// decode time spinning in the pool). About 16 chunks per thread balance that at the cost of one
// atomic add per chunk. A chunk is a multiple of the 4-row tile (of 64 or 16 rows, whole groups
// starting where the layout lets a share start, for an interleaved matrix) and at most 256 rows, so for
// prefill its weights (≤ 256 × 5632 Q8_0 = 1.5 MB, usually far less) are reused from cache by
// every token chunk. Which thread computes a row never changes its value: every (row, token)
// goes through the same arithmetic in any tile, so results stay identical for any thread count.
constexpr int64_t kChunksPerThread = 16;
constexpr int64_t kMaxChunkRows = 256;

}  // namespace

void matmul_many(const KernelTable& k, std::span<const WeightView> ws, const float* x,
                 std::span<float* const> ys, int64_t n_tokens, ThreadPool& pool) {
  if (ws.size() != ys.size())
    fail("matmul_many", "{} weight matrices but {} outputs", ws.size(), ys.size());
  // Per matrix: its tile kernel, activation kind, row chunk and first global chunk index.
  struct Job {
    TypeKernel tk;
    int64_t row_chunk;
    int64_t first_chunk;
  };
  // Thread-local storage is reached through these references: inside the parallel lambda a
  // thread_local name would mean the running worker's own (empty) instance.
  thread_local std::vector<Job> tl_jobs;
  thread_local std::vector<uint8_t> tl_q8a, tl_q8k, tl_q8at;
  std::vector<Job>& jobs = tl_jobs;
  jobs.clear();
  const int64_t threads = pool.size();
  int64_t n_chunks = 0;
  bool need[4] = {false, false, false, false};  // indexed by ActKind
  bool need_sums = false;
  for (const WeightView& w : ws) {
    const TypeKernel tk = kernel_for(k, w, n_tokens);
    if (!tk.fn) fail("matmul", "weight type {} is not supported", ggml_type_name(w.type));
    // A chunk must hold whole tiles: 4 rows, or for an interleaved matrix whole runs starting
    // where a share of its layout may (interleave.h: 64 rows for Q4_0/Q4_1/Q8_0, 16 for the
    // K-quants, 4 for F16/BF16).
    const int64_t tile_rows = is_interleaved(w.layout) ? interleaved_share_rows(w.type) : 4;
    if (is_interleaved(w.layout) && w.rows % kInterleaveRows != 0)
      fail("matmul", "an interleaved weight of {} rows: not a multiple of {}", w.rows, kInterleaveRows);
    const int be = type_block_elements(w.type);
    if (w.cols % be != 0)
      fail("matmul", "{} weight with {} columns: not a multiple of the block size {}", ggml_type_name(w.type), w.cols, be);
    if (w.row_bytes < type_row_bytes(w.type, w.cols))
      fail("matmul", "{} weight row stride {} < {} bytes", ggml_type_name(w.type), w.row_bytes, type_row_bytes(w.type, w.cols));
    if (w.cols != ws[0].cols)
      fail("matmul_many", "weight matrices of {} and {} columns: all must take the same input", ws[0].cols, w.cols);
    const int64_t row_chunk = std::clamp<int64_t>((w.rows / (threads * kChunksPerThread)) & ~(tile_rows - 1), tile_rows, kMaxChunkRows);
    jobs.push_back({tk, row_chunk, n_chunks});
    if (w.rows > 0) n_chunks += (w.rows + row_chunk - 1) / row_chunk;
    need[static_cast<int>(tk.act)] = true;
    need_sums |= tk.block_sums;
  }
  if (n_tokens <= 0 || n_chunks == 0) return;
  if (need[int(ActKind::Q8AT)]) need[int(ActKind::Q8A)] = true;  // the token tiles' source

  // Quantized activations live in per-thread buffers reused across calls (no allocation in
  // the steady state of a decode loop), one per activation format the matrices need, each
  // quantized once for all of them.
  std::vector<uint8_t>& scratch_q8a = tl_q8a;
  std::vector<uint8_t>& scratch_q8k = tl_q8k;
  std::vector<uint8_t>& scratch_q8at = tl_q8at;
  const int64_t cols = ws[0].cols;
  const size_t f32_row_bytes = static_cast<size_t>(cols) * sizeof(float);
  const size_t q8a_row_bytes =
      need[int(ActKind::Q8A)] ? cols / kQK * (sizeof(BlockQ8A) + (need_sums ? sizeof(int32_t) : 0)) : 0;
  const size_t q8k_row_bytes = need[int(ActKind::Q8K)] ? cols / kQKK * sizeof(BlockQ8K) : 0;
  const int64_t token_tiles = need[int(ActKind::Q8AT)] ? (n_tokens + kTokenTile - 1) / kTokenTile : 0;
  const size_t q8at_row_bytes = token_tiles ? cols / kQK * kTokenTileBytesPerTokenBlock : 0;
  scratch_q8a.resize(q8a_row_bytes * n_tokens);
  scratch_q8k.resize(q8k_row_bytes * n_tokens);
  scratch_q8at.resize(q8at_row_bytes * kTokenTile * token_tiles);
  if (q8a_row_bytes + q8k_row_bytes > 0) {
    uint8_t* qa = scratch_q8a.data();
    uint8_t* qk = scratch_q8k.data();
    pool.parallel_for(n_tokens, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        if (q8a_row_bytes) {
          uint8_t* row = qa + t * q8a_row_bytes;
          k.quantize_q8a(x + t * cols, row, cols);
          if (need_sums) write_block_sums(row, cols / kQK);
        }
        if (q8k_row_bytes) k.quantize_q8k(x + t * cols, qk + t * q8k_row_bytes, cols);
      }
    });
  }
  if (token_tiles > 0) {
    const uint8_t* qa = scratch_q8a.data();
    uint8_t* qt = scratch_q8at.data();
    pool.parallel_for(token_tiles, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        q8a_token_tile(qa, q8a_row_bytes, n_tokens, cols / kQK, i, qt + i * kTokenTile * q8at_row_bytes);
    });
  }
  const uint8_t* const q8a = scratch_q8a.data();
  const uint8_t* const q8k = scratch_q8k.data();
  const uint8_t* const q8at = scratch_q8at.data();
  auto act_of = [&](ActKind kind, size_t& row_bytes) -> const uint8_t* {
    switch (kind) {
      case ActKind::Q8A: row_bytes = q8a_row_bytes; return q8a;
      case ActKind::Q8K: row_bytes = q8k_row_bytes; return q8k;
      case ActKind::Q8AT: row_bytes = q8at_row_bytes; return q8at;
      default: row_bytes = f32_row_bytes; return reinterpret_cast<const uint8_t*>(x);
    }
  };

  // The row chunks of all matrices form one list, handed out from one counter in one parallel
  // region: one barrier for q, k and v together instead of three.
  std::atomic<int64_t> next_chunk{0};
  pool.parallel_for(threads, [&](int64_t, int64_t) {
    size_t m = 0;
    for (;;) {
      const int64_t c = next_chunk.fetch_add(1, std::memory_order_relaxed);
      if (c >= n_chunks) return;
      while (m + 1 < jobs.size() && jobs[m + 1].first_chunk <= c) ++m;  // chunks only increase
      const WeightView& w = ws[m];
      const Job& job = jobs[m];
      size_t act_row_bytes = 0;
      const uint8_t* a = act_of(job.tk.act, act_row_bytes);
      // Token chunks are a multiple of the widest token tile (4), or start at a token tile.
      const bool tiled = job.tk.act == ActKind::Q8AT;
      const int64_t align = tiled ? kTokenTile : 4;
      const int64_t fit = static_cast<int64_t>((tiled ? kTokenTileChunkBytes : kActChunkBytes) / act_row_bytes);
      const int64_t chunk = std::min(std::max(fit / align * align, align), n_tokens);
      const int64_t r0 = (c - job.first_chunk) * job.row_chunk;
      const int64_t r1 = std::min(r0 + job.row_chunk, w.rows);
      for (int64_t t0 = 0; t0 < n_tokens; t0 += chunk) {
        const int64_t nt = std::min(chunk, n_tokens - t0);
        job.tk.fn(w.row(r0), w.row_bytes, r1 - r0, a + t0 * act_row_bytes, act_row_bytes, nt,
                  ys[m] + t0 * w.rows + r0, w.rows, w.cols);
      }
    }
  });
}

void dequantize_weight_row(const WeightView& w, int64_t r, float* out) {
  if (r < 0 || r >= w.rows) fail("dequantize_weight_row", "row {} of a matrix of {} rows", r, w.rows);
  if (is_interleaved(w.layout)) dequantize_interleaved_row(w.type, static_cast<const uint8_t*>(w.data), w.rows, w.cols, r, out);
  else dequantize_row(w.type, w.row(r), out, w.cols);
}

void matmul(const KernelTable& k, const WeightView& w, const float* x, float* y,
            int64_t n_tokens, ThreadPool& pool) {
  float* const ys[1] = {y};
  matmul_many(k, std::span<const WeightView>(&w, 1), x, ys, n_tokens, pool);
}

void matmul_many(std::span<const WeightView> ws, const float* x, std::span<float* const> ys,
                 int64_t n_tokens, ThreadPool& pool) {
  matmul_many(active_kernels(), ws, x, ys, n_tokens, pool);
}

void matmul(const WeightView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  matmul(active_kernels(), w, x, y, n_tokens, pool);
}

}  // namespace billion::kernels
