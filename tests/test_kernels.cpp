// Kernels: every ISA's matmul and small ops against the scalar reference, the reference matmul
// against float math on dequantized weights, thread-count determinism, matmul_many against one
// matrix at a time, ggml's rotary tables and rotation against their definitions, and the thread
// pool.
//
// Tolerances come from a standard bound: a float sum of n terms t_k, in any order, is within
// γ_n·Σ|t_k| of the exact sum (γ_n ≈ n·u, u = 2^-24). Two implementations summing the same
// terms in different orders therefore differ by at most 2·n·u·Σ|t_k|. We bound Σ|t_k| by
// M = Σ_blocks Wmax_b · Amax_b · (elements in block), where Wmax_b bounds any weight-side integer
// times its scale (including the offset/min parts the kernels add separately) and Amax_b is the
// activation block's max magnitude; n = cols bounds the chain length.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "kernel_test_data.h"

using namespace billion;
using namespace billion::kernels;
using billion::testing::gaussian;
using billion::testing::make_weights;

namespace {

constexpr double kU = 1.0 / (1 << 24);  // unit roundoff of float

// Σ over elements of (max |weight-side term| in its block) · (max |activation| in its block).
double magnitude_bound(GgmlType type, const uint8_t* row, const float* x, int64_t cols) {
  const int be = type_block_elements(type);
  std::vector<float> deq(cols);
  dequantize_row(type, row, deq.data(), cols);
  const int ab = be == 1 ? 1 : (be == kQKK ? kQKK : kQK);  // activation block
  double m = 0.0;
  for (int64_t i = 0; i < cols; i += ab) {
    double wmax = 0.0, amax = 0.0;
    for (int64_t j = i; j < i + ab; ++j) {
      wmax = std::max(wmax, static_cast<double>(std::fabs(deq[j])));
      amax = std::max(amax, static_cast<double>(std::fabs(x[j])));
    }
    // Offset formats add the unsigned part and the offset part separately; each is at most
    // about twice the largest dequantized magnitude, and K-quant sub-scales reach 63·15.
    const double factor = be == 1 ? 1.0 : (be == kQKK ? 64.0 : 4.0);
    m += factor * wmax * amax * ab;
  }
  return m;
}

const GgmlType kAllTypes[] = {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0,
                              GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                              GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

// Odd row counts (not a multiple of the 4-row tile) and column counts that are not a multiple
// of 8 where the format allows (float types), else a few blocks.
int64_t test_cols(GgmlType type) {
  const int be = type_block_elements(type);
  return be == 1 ? 203 : (be == kQK ? 32 * 7 : 256 * 2);
}

}  // namespace

class MatmulTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(MatmulTest, EveryIsaMatchesReference) {
  const GgmlType type = GetParam();
  const int64_t rows = 37, cols = test_cols(type);
  auto wbytes = make_weights(type, rows, cols, 3);
  WeightView w{type, wbytes.data(), rows, cols, type_row_bytes(type, cols)};
  ThreadPool pool(2);
  for (int64_t n_tok : {1, 3, 7, 8}) {  // tiles of 4, 2 and 1 tokens
    auto x = gaussian(static_cast<size_t>(n_tok * cols), 5);
    std::vector<float> ref(n_tok * rows), got(n_tok * rows);
    matmul(scalar_kernel_table(), w, x.data(), ref.data(), n_tok, pool);
    for (Isa isa : available_isas()) {
      matmul(*kernels_for(isa), w, x.data(), got.data(), n_tok, pool);
      for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t r = 0; r < rows; ++r) {
          const double m = magnitude_bound(type, w.row(r), x.data() + t * cols, cols);
          const double tol = 2.0 * cols * kU * m;
          ASSERT_NEAR(got[t * rows + r], ref[t * rows + r], tol)
              << ggml_type_name(type) << " " << isa_name(isa) << " row " << r << " token " << t;
        }
    }
  }
}

// The reference quantized matmul equals float math on the dequantized weights up to the
// activation quantization: |Σ w_i (a_i − x_i)| ≤ Σ_blocks (Σ|w_i|)·d_a/2, d_a = amax/127.
TEST_P(MatmulTest, ReferenceMatchesDequantizedFloat) {
  const GgmlType type = GetParam();
  const int64_t rows = 5, cols = test_cols(type);
  auto wbytes = make_weights(type, rows, cols, 9);
  WeightView w{type, wbytes.data(), rows, cols, type_row_bytes(type, cols)};
  auto x = gaussian(static_cast<size_t>(cols), 13);
  std::vector<float> y(rows), deq(cols);
  ThreadPool pool(1);
  matmul(scalar_kernel_table(), w, x.data(), y.data(), 1, pool);
  const int be = type_block_elements(type);
  const int ab = be == 1 ? 1 : (be == kQKK ? kQKK : kQK);
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(type, w.row(r), deq.data(), cols);
    double exact = 0.0, quant_err = 0.0;
    for (int64_t i = 0; i < cols; ++i) exact += static_cast<double>(deq[i]) * x[i];
    if (be > 1)
      for (int64_t i = 0; i < cols; i += ab) {
        double wsum = 0.0, amax = 0.0;
        for (int64_t j = i; j < i + ab; ++j) {
          wsum += std::fabs(deq[j]);
          amax = std::max(amax, static_cast<double>(std::fabs(x[j])));
        }
        quant_err += wsum * amax / 127.0 / 2.0;
      }
    const double tol = quant_err * 1.001 + 2.0 * cols * kU * magnitude_bound(type, w.row(r), x.data(), cols);
    EXPECT_NEAR(y[r], exact, tol) << ggml_type_name(type) << " row " << r;
  }
}

// 1 and 2 threads give bitwise identical results, and so does a tile starting at an odd row or
// a token computed on its own instead of inside a token tile.
TEST_P(MatmulTest, DeterministicAcrossThreadsAndTiles) {
  const GgmlType type = GetParam();
  const int64_t rows = 37, cols = test_cols(type);
  auto wbytes = make_weights(type, rows, cols, 21);
  WeightView w{type, wbytes.data(), rows, cols, type_row_bytes(type, cols)};
  ThreadPool one(1), two(2);
  for (Isa isa : available_isas()) {
    const KernelTable& k = *kernels_for(isa);
    for (int64_t n_tok : {1, 5}) {
      auto x = gaussian(static_cast<size_t>(n_tok * cols), 17);
      std::vector<float> a(n_tok * rows), b(n_tok * rows);
      matmul(k, w, x.data(), a.data(), n_tok, one);
      matmul(k, w, x.data(), b.data(), n_tok, two);
      ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << isa_name(isa) << " " << n_tok;
      // Rows 1..36 alone: every row lands in a different place of the 4-row tiles.
      WeightView shifted{type, w.row(1), rows - 1, cols, w.row_bytes};
      std::vector<float> c(n_tok * (rows - 1));
      matmul(k, shifted, x.data(), c.data(), n_tok, one);
      for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t r = 1; r < rows; ++r)
          ASSERT_EQ(a[t * rows + r], c[t * (rows - 1) + r - 1]) << isa_name(isa) << " row " << r;
      std::vector<float> alone(rows);
      for (int64_t t = 0; t < n_tok; ++t) {
        matmul(k, w, x.data() + t * cols, alone.data(), 1, one);
        ASSERT_EQ(0, std::memcmp(alone.data(), a.data() + t * rows, rows * 4)) << isa_name(isa) << " token " << t;
      }
    }
  }
}

// Integer-valued inputs make every ISA's float arithmetic exact, so all must equal the reference
// bit for bit: weight scales 1 (and small integer minimums), activation blocks whose largest
// magnitude is 127 (so the Q8A scale is exactly 1 and the quants are the inputs) with small sums.
// Every product and partial sum is then an integer below 2^24, exact in float in any order; what
// is left to differ is the integer part of the kernels (offsets, nibble order, block pairing,
// odd block counts, row and token tails), which this checks without any tolerance.
TEST(Matmul, IntegerInputsBitIdenticalOnEveryIsa) {
  const GgmlType types[] = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1};
  const int64_t rows = 13;  // 3 tiles of 4 rows and one row alone
  const int64_t n_tok = 7;  // token tiles of 4, 2 and 1
  std::mt19937 rng(77);
  ThreadPool pool(2);
  // Block counts: 1, odd ones (a last block without a partner in a two-block register), and
  // SmolLM2-135M's 576 columns (18 blocks). |Σ| ≤ 67·(127·127 + 31·127·20) < 2^24.
  for (int64_t nb : {1, 2, 3, 7, 18, 67}) {
    const int64_t cols = nb * kQK;
    std::vector<float> x(static_cast<size_t>(n_tok * cols));
    for (int64_t b = 0; b < n_tok * nb; ++b) {
      float* blk = x.data() + b * kQK;
      for (int j = 0; j < kQK; ++j) blk[j] = static_cast<float>(static_cast<int>(rng() % 41) - 20);
      blk[rng() % kQK] = (rng() & 1) ? 127.0f : -127.0f;
    }
    for (GgmlType type : types) {
      const size_t bb = type_block_bytes(type), rb = type_row_bytes(type, cols);
      std::vector<uint8_t> wbytes(rb * rows);
      for (auto& v : wbytes) v = static_cast<uint8_t>(rng());
      for (size_t off = 0; off < wbytes.size(); off += bb) {
        const uint16_t one = f32_to_f16(1.0f);
        std::memcpy(&wbytes[off], &one, 2);
        if (type == GgmlType::Q4_1 || type == GgmlType::Q5_1) {
          const uint16_t m = f32_to_f16(static_cast<float>(static_cast<int>(rng() % 17) - 8));
          std::memcpy(&wbytes[off + 2], &m, 2);
        }
        if (type == GgmlType::Q8_0)  // ggml's quantizer never writes -128
          for (size_t j = 2; j < bb; ++j)
            if (wbytes[off + j] == 0x80) wbytes[off + j] = 0x81;
      }
      const WeightView w{type, wbytes.data(), rows, cols, rb};
      std::vector<float> ref(n_tok * rows), got(n_tok * rows);
      matmul(scalar_kernel_table(), w, x.data(), ref.data(), n_tok, pool);
      for (Isa isa : available_isas()) {
        matmul(*kernels_for(isa), w, x.data(), got.data(), n_tok, pool);
        for (int64_t i = 0; i < n_tok * rows; ++i)
          ASSERT_EQ(got[i], ref[i]) << ggml_type_name(type) << " " << isa_name(isa) << " blocks " << nb
                                    << " token " << i / rows << " row " << i % rows;
      }
    }
  }
}

// The AVX-512 tiles reproduce the AVX2 tiles' float sequence exactly (and those equal ggml's
// AVX2 vec_dot, test_quant.cpp), so on ordinary Gaussian data every result must be bit-identical
// between the two ISAs, for any token count (token pairs, a lone token, decode's row pairs), any
// row count and odd block counts. This is what keeps our logits equal to llama.cpp's on a CPU
// that picks the AVX-512 table.
TEST(Matmul, Avx512BitIdenticalToAvx2) {
  const KernelTable* a2 = kernels_for(Isa::Avx2);
  const KernelTable* a5 = kernels_for(Isa::Avx512);
  if (!a2 || !a5) {
    std::printf("[   NOTE   ] no AVX-512 VNNI on this CPU: avx512 vs avx2 identity NOT checked\n");
    EXPECT_EQ(a5, nullptr);  // a CPU with AVX-512 but no AVX2 table would be a dispatch bug
    return;
  }
  ThreadPool pool(2);
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1}) {
    for (int64_t nb : {1, 3, 18, 64}) {
      const int64_t rows = 13, cols = nb * kQK;
      auto wbytes = make_weights(type, rows, cols, 31);
      const WeightView w{type, wbytes.data(), rows, cols, type_row_bytes(type, cols)};
      for (int64_t n_tok : {1, 2, 3, 8, 9, 17}) {
        auto x = gaussian(static_cast<size_t>(n_tok * cols), 37);
        std::vector<float> y2(n_tok * rows), y5(n_tok * rows);
        matmul(*a2, w, x.data(), y2.data(), n_tok, pool);
        matmul(*a5, w, x.data(), y5.data(), n_tok, pool);
        for (int64_t i = 0; i < n_tok * rows; ++i)
          ASSERT_EQ(y5[i], y2[i]) << ggml_type_name(type) << " blocks " << nb << " tokens " << n_tok << " token "
                                  << i / rows << " row " << i % rows;
      }
    }
  }
}

// The AVX-512 K-quant tiles (matmul_kquant_avx512.cpp) promise the scalar reference's bits, not
// merely its value within a tolerance: row counts around the 4-row tile, 1-8 super-blocks,
// token counts hitting every token tile (3, 2, 1 and the one-token decode path), one and two
// threads. Besides random blocks, an extreme case: every weight byte 0xFF (Q6_K scales -128)
// against activations all +1 or all -1 (|q| = 127 everywhere), the largest integer sums the
// tiles must hold exactly.
TEST(Matmul, Avx512KQuantBitIdenticalToReference) {
  const KernelTable* a5 = kernels_for(Isa::Avx512);
  if (!a5) {
    std::printf("[   NOTE   ] no AVX-512 VNNI on this CPU: avx512 K-quant bit identity NOT checked\n");
    return;
  }
  const KernelTable& ref = scalar_kernel_table();
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    for (int64_t rows : {1, 3, 13, 37}) {
      for (int64_t nb : {1, 2, 8}) {
        const int64_t cols = nb * kQKK;
        const size_t rb = type_row_bytes(type, cols);
        for (bool extreme : {false, true}) {
          std::vector<uint8_t> wbytes = make_weights(type, rows, cols, 41 + static_cast<uint32_t>(rows * nb));
          if (extreme) {
            const size_t bb = type_block_bytes(type);
            const uint16_t d = f32_to_f16(0.01f);
            for (size_t off = 0; off < wbytes.size(); off += bb) {
              std::memset(&wbytes[off], 0xFF, bb);
              if (type == GgmlType::Q6_K) {
                std::memset(&wbytes[off + 192], 0x80, 16);  // int8 scales: -128
                std::memcpy(&wbytes[off + 208], &d, 2);
              } else {
                std::memcpy(&wbytes[off], &d, 2);
                std::memcpy(&wbytes[off + 2], &d, 2);
              }
            }
          }
          const WeightView w{type, wbytes.data(), rows, cols, rb};
          for (int64_t n_tok : {1, 2, 3, 4, 5, 8, 9, 17}) {
            std::vector<float> x = gaussian(static_cast<size_t>(n_tok * cols), 43);
            if (extreme)
              for (size_t i = 0; i < x.size(); ++i) x[i] = (i / static_cast<size_t>(cols)) % 2 ? -1.0f : 1.0f;
            std::vector<float> yr(n_tok * rows);
            ThreadPool one(1);
            matmul(ref, w, x.data(), yr.data(), n_tok, one);
            for (int threads : {1, 2}) {
              ThreadPool pool(threads);
              std::vector<float> y5(n_tok * rows, -7.0f);
              matmul(*a5, w, x.data(), y5.data(), n_tok, pool);
              if (std::memcmp(y5.data(), yr.data(), y5.size() * sizeof(float)) != 0) {
                int64_t i = 0;
                while (std::memcmp(&y5[i], &yr[i], sizeof(float)) == 0) ++i;
                FAIL() << ggml_type_name(type) << (extreme ? " extreme" : " random") << " rows " << rows
                       << " super-blocks " << nb << " tokens " << n_tok << " threads " << threads << ": token "
                       << i / rows << " row " << i % rows << " avx512 " << y5[i] << " reference " << yr[i];
              }
            }
          }
        }
      }
    }
  }
}

// The AVX-512 kernels are tested (by every test above that loops over available_isas()) exactly
// when the CPU has AVX-512 F/BW/VL/DQ + VNNI; when it lacks them, say so in the output rather
// than pass silently with fewer ISAs.
TEST(Matmul, Avx512RunsWhenTheCpuHasIt) {
  bool cpu_has = false;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  cpu_has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx2");
#endif
  const auto isas = available_isas();
  const bool listed = std::find(isas.begin(), isas.end(), Isa::Avx512) != isas.end();
  EXPECT_EQ(listed, cpu_has);
  EXPECT_EQ(kernels_for(Isa::Avx512) != nullptr, cpu_has);
  if (cpu_has)
    std::printf("[   NOTE   ] AVX-512 VNNI present: the avx512 kernels are tested against the reference\n");
  else
    std::printf("[   NOTE   ] this CPU lacks AVX-512 F/BW/VL/DQ+VNNI: the avx512 kernels were NOT run "
                "(only scalar and avx2 were tested)\n");
}

INSTANTIATE_TEST_SUITE_P(Types, MatmulTest, ::testing::ValuesIn(kAllTypes),
                         [](const auto& info) { return std::string(ggml_type_name(info.param)); });

TEST(Matmul, RejectsBadShapes) {
  std::vector<uint8_t> w(18 * 4);
  std::vector<float> x(40), y(4);
  ThreadPool pool(1);
  EXPECT_THROW(matmul({GgmlType::Q4_0, w.data(), 2, 40, 18}, x.data(), y.data(), 1, pool), Error);
  EXPECT_THROW(matmul({GgmlType::IQ2_XXS, w.data(), 2, 256, 66}, x.data(), y.data(), 1, pool), Error);
}

// matmul_many (q/k/v and gate/up in one call) must give every matrix exactly the bits of
// multiplying it alone, for every ISA and thread count, with matrices of different types (one
// or two activation formats, float weights), row counts that are not multiples of the tile or
// of the row chunk, an empty matrix, and token counts hitting every token tile. The reference
// is each (row, token) computed alone, one thread: no chunk or tile boundary in common.
TEST(Matmul, ManyBitIdenticalToOneAtATime) {
  const int64_t cols = 512;  // a multiple of both the 32- and the 256-element blocks
  struct Mat {
    GgmlType type;
    int64_t rows;
  };
  const std::vector<std::vector<Mat>> sets = {
      {{GgmlType::Q4_0, 37}, {GgmlType::Q4_0, 9}, {GgmlType::Q4_0, 9}},              // q, k, v (GQA)
      {{GgmlType::Q4_1, 300}, {GgmlType::Q4_1, 300}},                                // up, gate
      {{GgmlType::Q8_0, 21}, {GgmlType::Q4_K, 13}, {GgmlType::Q6_K, 0}, {GgmlType::F16, 7},
       {GgmlType::Q5_1, 5}},  // Q8A, Q8K and float activations in one call
  };
  ThreadPool one(1);
  for (Isa isa : available_isas()) {
    const KernelTable& k = *kernels_for(isa);
    for (size_t s = 0; s < sets.size(); ++s) {
      std::vector<std::vector<uint8_t>> bytes;
      std::vector<WeightView> ws;
      for (size_t m = 0; m < sets[s].size(); ++m) {
        const Mat& mat = sets[s][m];
        bytes.push_back(make_weights(mat.type, std::max<int64_t>(mat.rows, 1), cols, 41 + uint32_t(10 * s + m)));
        ws.push_back({mat.type, bytes.back().data(), mat.rows, cols, type_row_bytes(mat.type, cols)});
      }
      for (int64_t n_tok : {1, 2, 3, 9}) {
        auto x = gaussian(static_cast<size_t>(n_tok * cols), 43);
        // Expected: every (row, token) alone.
        std::vector<std::vector<float>> want(ws.size());
        for (size_t m = 0; m < ws.size(); ++m) {
          want[m].resize(n_tok * ws[m].rows);
          for (int64_t r = 0; r < ws[m].rows; ++r) {
            const WeightView row{ws[m].type, ws[m].row(r), 1, cols, ws[m].row_bytes};
            for (int64_t t = 0; t < n_tok; ++t) matmul(k, row, x.data() + t * cols, &want[m][t * ws[m].rows + r], 1, one);
          }
        }
        for (int threads : {1, 2, 3, 5}) {
          ThreadPool pool(threads);
          constexpr int64_t kGuard = 8;  // trailing floats that must stay untouched
          std::vector<std::vector<float>> got(ws.size());
          std::vector<float*> ys;
          for (size_t m = 0; m < ws.size(); ++m) {
            got[m].assign(n_tok * ws[m].rows + kGuard, -12345.0f);
            ys.push_back(got[m].data());
          }
          matmul_many(k, ws, x.data(), ys, n_tok, pool);
          for (size_t m = 0; m < ws.size(); ++m) {
            // (memcmp of an empty matrix's null data would be undefined behaviour)
            if (!want[m].empty()) {
              ASSERT_EQ(0, std::memcmp(got[m].data(), want[m].data(), want[m].size() * 4))
                  << isa_name(isa) << " set " << s << " matrix " << m << " (" << ggml_type_name(ws[m].type)
                  << ") tokens " << n_tok << " threads " << threads;
            }
            for (int64_t g = 0; g < kGuard; ++g) ASSERT_EQ(got[m][want[m].size() + g], -12345.0f) << "wrote past matrix " << m;
          }
        }
      }
    }
  }
}

TEST(Matmul, ManyRejectsMismatchedInputs) {
  auto w0 = make_weights(GgmlType::Q8_0, 2, 64, 1);
  auto w1 = make_weights(GgmlType::Q8_0, 2, 96, 2);
  const std::vector<WeightView> ws = {{GgmlType::Q8_0, w0.data(), 2, 64, type_row_bytes(GgmlType::Q8_0, 64)},
                                      {GgmlType::Q8_0, w1.data(), 2, 96, type_row_bytes(GgmlType::Q8_0, 96)}};
  std::vector<float> x(96), y0(2), y1(2);
  ThreadPool pool(2);
  std::vector<float*> ys = {y0.data(), y1.data()};
  EXPECT_THROW(matmul_many(ws, x.data(), ys, 1, pool), Error);  // 64 vs 96 columns
  std::vector<float*> one_y = {y0.data()};
  EXPECT_THROW(matmul_many(std::span<const WeightView>(ws.data(), 1), x.data(), ys, 1, pool), Error);
  EXPECT_NO_THROW(matmul_many(std::span<const WeightView>(ws.data(), 1), x.data(), one_y, 1, pool));
}

// ---- small ops: each ISA against the reference -------------------------------------------

namespace {
// f16 cache values from floats, rounded as the reference rounds them.
std::vector<uint16_t> to_f16(const std::vector<float>& x) {
  std::vector<uint16_t> h(x.size());
  scalar_kernel_table().f32_to_f16(x.data(), h.data(), static_cast<int64_t>(x.size()));
  return h;
}
}  // namespace

class OpsTest : public ::testing::TestWithParam<Isa> {
 protected:
  const KernelTable& ref = scalar_kernel_table();
  const KernelTable& k() { return *kernels_for(GetParam()); }
};

TEST_P(OpsTest, RmsNormAndAdd) {
  for (int64_t n : {1, 7, 64, 2048 + 13}) {
    auto x = gaussian(n, 1, 2.0f), w = gaussian(n, 2), b = gaussian(n, 3);
    std::vector<float> a(n), c(n);
    ref.rmsnorm(x.data(), w.data(), a.data(), n, 1e-5f);
    k().rmsnorm(x.data(), w.data(), c.data(), n, 1e-5f);
    // The sum of squares carries ≤ n·u relative error, the 1/sqrt half of it, plus ~4 roundings.
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(c[i], a[i], (n * kU + 8 * kU) * std::fabs(a[i]) + 1e-30);
    ref.add(x.data(), b.data(), a.data(), n);
    k().add(x.data(), b.data(), c.data(), n);
    ASSERT_EQ(a, c);  // one rounding each: identical
  }
}

TEST_P(OpsTest, SoftmaxAndSiluMul) {
  for (int64_t n : {1, 9, 100, 1031}) {
    auto x = gaussian(n, 4, 5.0f), up = gaussian(n, 5);
    if (n > 3) x[2] = -INFINITY;  // a masked position
    std::vector<float> a = x, c = x;
    ref.softmax(a.data(), n);
    k().softmax(c.data(), n);
    // exp within 4u relative; the normalising sum within n·u.
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(c[i], a[i], (n + 16) * kU * a[i] + 1e-30) << n << " " << i;
    if (n > 3) {
      ASSERT_EQ(c[2], 0.0f);
    }
    auto gate = gaussian(n, 14, 6.0f);
    std::vector<float> s(n), t(n);
    ref.silu_mul(gate.data(), up.data(), s.data(), n);
    k().silu_mul(gate.data(), up.data(), t.data(), n);
    // exp within 4u; 1+e, the division and the product add 3 roundings.
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(t[i], s[i], 12 * kU * std::fabs(s[i]) + 1e-30) << gate[i];
  }
  std::vector<float> all_masked(5, -INFINITY);
  k().softmax(all_masked.data(), 5);
  for (float v : all_masked) EXPECT_EQ(v, 0.0f);
}

TEST_P(OpsTest, F16RowsExact) {
  std::vector<float> x = gaussian(1000, 6, 100.0f);
  const float special[] = {0.0f, -0.0f, 65504.0f, 65520.0f, 1e6f, -1e6f, 6e-8f, 3e-8f, 2.98e-8f,
                           1e-40f, INFINITY, -INFINITY, 1.00048828125f, 1.00146484375f, 5.9604645e-08f};
  std::copy(std::begin(special), std::end(special), x.begin());
  std::vector<uint16_t> a(x.size()), c(x.size());
  ref.f32_to_f16(x.data(), a.data(), x.size());
  k().f32_to_f16(x.data(), c.data(), x.size());
  ASSERT_EQ(a, c);
  std::vector<float> fa(x.size()), fc(x.size());
  ref.f16_to_f32(a.data(), fa.data(), x.size());
  k().f16_to_f32(a.data(), fc.data(), x.size());
  ASSERT_EQ(0, std::memcmp(fa.data(), fc.data(), fa.size() * 4));
}

// Every ISA's attention gives the reference's bits in both orders (llama.cpp parity needs it):
// head_dim a multiple of 64 (the fast paths: eight or sixteen positions per lane sum, 16-position
// softmax chunks; n_pos around those sizes; for head_dim 64 also several query heads of a KV head
// in one call, up to 8 at a time) and in all other head_dims the general path, with a cache row
// wider than one head.
TEST_P(OpsTest, AttentionF16BitIdenticalToReference) {
  for (int64_t head_dim : {64, 128, 256, 80, 48}) {
    const int64_t kv_stride = 3 * head_dim;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    for (int64_t n_q : {1, 2, 3, 4, 5, 8, 11}) {  // query heads per call: one, a GQA group, more than 8
      for (int64_t n_pos : {1, 2, 7, 8, 9, 15, 16, 17, 33, 64, 65, 130, 515}) {
        const auto q = gaussian(n_q * head_dim, 11 + n_pos);
        const auto kc = to_f16(gaussian(n_pos * kv_stride, 12 + n_pos, 2.0f));
        const auto vc = to_f16(gaussian(n_pos * kv_stride, 13 + n_pos));
        std::vector<float> a(n_q * head_dim), c(n_q * head_dim), scratch(n_pos);
        for (AttentionOrder order : {AttentionOrder::Vec, AttentionOrder::Tiled}) {
          ref.attention_f16(q.data(), head_dim, n_q, head_dim, kc.data() + head_dim, vc.data() + head_dim, kv_stride,
                            n_pos, scale, a.data(), head_dim, scratch.data(), order);
          k().attention_f16(q.data(), head_dim, n_q, head_dim, kc.data() + head_dim, vc.data() + head_dim, kv_stride,
                            n_pos, scale, c.data(), head_dim, scratch.data(), order);
          ASSERT_EQ(0, std::memcmp(a.data(), c.data(), a.size() * sizeof(float)))
              << "head_dim " << head_dim << " heads " << n_q << " n_pos " << n_pos
              << (order == AttentionOrder::Vec ? " vec" : " tiled");
        }
      }
    }
  }
}

TEST_P(OpsTest, AttentionF16) {
  const int64_t head_dim = 80, n_q = 3, kv_stride = 2 * head_dim;  // head_dim not a multiple of 32
  for (int64_t n_pos : {1, 7, 130}) {
    auto q = gaussian(n_q * head_dim, 7);
    auto kf = gaussian(n_pos * kv_stride, 8), vf = gaussian(n_pos * kv_stride, 9);
    const auto kc = to_f16(kf), vc = to_f16(vf);
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    std::vector<float> a(n_q * head_dim), c(n_q * head_dim), scratch(n_pos);
    // Every ISA reproduces the reference's bits in both orders (llama.cpp parity needs it).
    for (AttentionOrder order : {AttentionOrder::Vec, AttentionOrder::Tiled}) {
      ref.attention_f16(q.data(), head_dim, n_q, head_dim, kc.data(), vc.data(), kv_stride, n_pos, scale, a.data(), head_dim, scratch.data(), order);
      k().attention_f16(q.data(), head_dim, n_q, head_dim, kc.data(), vc.data(), kv_stride, n_pos, scale, c.data(), head_dim, scratch.data(), order);
      ASSERT_EQ(0, std::memcmp(a.data(), c.data(), a.size() * sizeof(float))) << n_pos;
    }
    // The tiled order against the exact answer (below).
    ref.attention_f16(q.data(), head_dim, n_q, head_dim, kc.data(), vc.data(), kv_stride, n_pos, scale, a.data(), head_dim, scratch.data(), AttentionOrder::Tiled);
    {  // exact: double arithmetic on the f16-rounded q
      std::vector<double> ex(n_q * head_dim);
      for (int64_t h = 0; h < n_q; ++h) {
        std::vector<double> sc(n_pos);
        double mx = -1e300, sum = 0;
        for (int64_t p = 0; p < n_pos; ++p) {
          double d = 0;
          for (int64_t i = 0; i < head_dim; ++i) d += double(f16_to_f32(f32_to_f16(q[h * head_dim + i]))) * f16_to_f32(kc[p * kv_stride + i]);
          sc[p] = d * scale;
          mx = std::max(mx, sc[p]);
        }
        for (auto& x : sc) sum += (x = std::exp(x - mx));
        for (int64_t i = 0; i < head_dim; ++i) {
          double o = 0;
          for (int64_t p = 0; p < n_pos; ++p) o += sc[p] / sum * f16_to_f32(vc[p * kv_stride + i]);
          ex[h * head_dim + i] = o;
        }
      }
      c.assign(ex.begin(), ex.end());
    }
    // Scores: dot of head_dim terms → abs error ε_s ≤ 2·head_dim·u·scale·Σ|q k|; probabilities
    // then carry relative error 2ε_s + (n_pos+16)u; the weighted sum adds n_pos·u; all times max|v|.
    double qk = 0, vmax = 0;
    for (int64_t p = 0; p < n_pos; ++p)
      for (int64_t i = 0; i < head_dim; ++i) vmax = std::max(vmax, static_cast<double>(std::fabs(vf[p * kv_stride + i])) * 1.001);
    for (int64_t h = 0; h < n_q; ++h)
      for (int64_t p = 0; p < n_pos; ++p) {
        double s = 0;
        for (int64_t i = 0; i < head_dim; ++i) s += std::fabs(q[h * head_dim + i] * kf[p * kv_stride + i]) * 1.001;
        qk = std::max(qk, s);
      }
    const double eps_s = 2.0 * head_dim * kU * scale * qk;
    // ... and each probability is rounded to f16 (relative 2^-11 at most): Σ_p of it ≤ 2^-11.
    const double tol = vmax * (2 * eps_s + (2 * n_pos + 16) * kU + std::ldexp(1.0, -11));
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(c[i], a[i], tol) << n_pos << " " << i;
  }
}

// ggml's rotation: every ISA gives the reference's bits, in both pairings, with partial rotary
// (the dims past n_rot of every head pass through untouched) and several heads.
TEST_P(OpsTest, RopeGgmlBitIdentical) {
  struct Shape { int64_t n_heads, head_dim, n_rot; };
  const float theta_scale = std::pow(10000.0f, -2.0f / 64.0f);
  for (Shape sh : {Shape{3, 64, 64}, Shape{3, 64, 32}, Shape{2, 80, 20}, Shape{1, 8, 2}}) {
    const int64_t half = sh.n_rot / 2;
    std::vector<float> cs(half), sn(half);
    rope_tables_ggml(1234, theta_scale, nullptr, half, cs.data(), sn.data());
    const auto x = gaussian(sh.n_heads * sh.head_dim, 13, 3.0f);
    for (RopeStyle style : {RopeStyle::Neox, RopeStyle::Norm}) {
      std::vector<float> a = x, c = x;
      ref.rope_ggml(a.data(), sh.n_heads, sh.head_dim, sh.n_rot, cs.data(), sn.data(), style);
      k().rope_ggml(c.data(), sh.n_heads, sh.head_dim, sh.n_rot, cs.data(), sn.data(), style);
      ASSERT_EQ(0, std::memcmp(a.data(), c.data(), a.size() * sizeof(float))) << sh.head_dim << " " << sh.n_rot;
      for (int64_t h = 0; h < sh.n_heads; ++h)
        for (int64_t d = sh.n_rot; d < sh.head_dim; ++d) ASSERT_EQ(c[h * sh.head_dim + d], x[h * sh.head_dim + d]) << h << " " << d;
      // The reference is the contracted formula, pair by pair (Neox: i with i+half; Norm: 2i with 2i+1).
      for (int64_t h = 0; h < sh.n_heads; ++h)
        for (int64_t i = 0; i < half; ++i) {
          const int64_t i0 = h * sh.head_dim + (style == RopeStyle::Neox ? i : 2 * i);
          const int64_t i1 = h * sh.head_dim + (style == RopeStyle::Neox ? i + half : 2 * i + 1);
          ASSERT_EQ(a[i0], std::fma(x[i0], cs[i], -(x[i1] * sn[i]))) << i;
          ASSERT_EQ(a[i1], std::fma(x[i0], sn[i], x[i1] * cs[i])) << i;
        }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, OpsTest, ::testing::ValuesIn(available_isas()),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

// ---- reference-only ops: checked against their definitions ------------------------------

TEST(Ops, GeluExact) {
  const float x[] = {-3.0f, -1.0f, 0.0f, 0.5f, 1.0f, 2.0f};
  float y[6];
  scalar_kernel_table().gelu(x, y, 6);
  const double expected[] = {-0.0040496940948, -0.15865525393, 0.0, 0.34573123, 0.84134474607, 1.9544997361};
  // Same formula as torch (x/2·(1+erf(x/√2)) in float): for negative x, 1 + erf cancels, so the
  // error is absolute, about |x|/2 times the ulp of 1 (2u), plus a few relative roundings.
  for (int i = 0; i < 6; ++i)
    EXPECT_NEAR(y[i], expected[i], std::fabs(x[i]) * 2 * kU + 4 * kU * std::fabs(expected[i]));
}

TEST(Ops, LayerNorm) {
  const int64_t n = 37;
  auto x = gaussian(n, 10, 3.0f), w = gaussian(n, 11), b = gaussian(n, 12);
  std::vector<float> y(n);
  scalar_kernel_table().layernorm(x.data(), w.data(), b.data(), y.data(), n, 1e-5f);
  double mean = 0, var = 0;
  for (float v : x) mean += v;
  mean /= n;
  for (float v : x) var += (v - mean) * (v - mean);
  var /= n;
  for (int64_t i = 0; i < n; ++i)
    EXPECT_NEAR(y[i], (x[i] - mean) / std::sqrt(var + 1e-5) * w[i] + b[i], 1e-5);
}

TEST(Ops, RopeStylesAndPartialRotary) {
  const int64_t head_dim = 8, n_rot = 4, half = 2;
  const float inv_freq[] = {1.0f, 0.01f};
  float cs[half], sn[half];
  rope_cos_sin(3, inv_freq, half, cs, sn);
  EXPECT_FLOAT_EQ(cs[0], std::cos(3.0f));
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  float neox[8], norm[8];
  std::copy(x, x + 8, neox);
  std::copy(x, x + 8, norm);
  scalar_kernel_table().rope(neox, 1, head_dim, n_rot, cs, sn, RopeStyle::Neox);
  scalar_kernel_table().rope(norm, 1, head_dim, n_rot, cs, sn, RopeStyle::Norm);
  // Neox rotates (x0, x2) and (x1, x3); Norm rotates (x0, x1) and (x2, x3); dims 4..7 untouched.
  EXPECT_FLOAT_EQ(neox[0], 1 * cs[0] - 3 * sn[0]);
  EXPECT_FLOAT_EQ(neox[2], 1 * sn[0] + 3 * cs[0]);
  EXPECT_FLOAT_EQ(neox[1], 2 * cs[1] - 4 * sn[1]);
  EXPECT_FLOAT_EQ(norm[0], 1 * cs[0] - 2 * sn[0]);
  EXPECT_FLOAT_EQ(norm[1], 1 * sn[0] + 2 * cs[0]);
  EXPECT_FLOAT_EQ(norm[3], 3 * sn[1] + 4 * cs[1]);
  for (int i = 4; i < 8; ++i) EXPECT_EQ(neox[i], x[i]) << i;
  for (int i = 4; i < 8; ++i) EXPECT_EQ(norm[i], x[i]) << i;
}

// ggml's tables: the angle of pair i is pos·θ^i, θ^i multiplied up in float one pair at a time.
// Checked twice: bit for bit against that recipe written out here, and against double
// arithmetic on the same θ, where i float multiplications leave at most i·u relative error in
// the angle (so |Δcos| ≤ angle·(i+1)·u), plus cosf's own rounding.
TEST(Ops, RopeTablesGgml) {
  const int64_t n_rot = 64, half = n_rot / 2;
  const float theta_scale = std::pow(10000.0f, -2.0f / float(n_rot));
  std::vector<float> factors(half), ones(half, 1.0f);
  for (int64_t i = 0; i < half; ++i) factors[i] = 1.0f + 0.25f * float(i);  // llama3-like divisors ≥ 1
  for (int64_t pos : {0, 1, 7, 1000, 8191}) {
    std::vector<float> cs(half), sn(half), fcs(half), fsn(half), ocs(half), osn(half);
    rope_tables_ggml(pos, theta_scale, nullptr, half, cs.data(), sn.data());
    rope_tables_ggml(pos, theta_scale, factors.data(), half, fcs.data(), fsn.data());
    rope_tables_ggml(pos, theta_scale, ones.data(), half, ocs.data(), osn.data());
    std::vector<float> angle(half);
    angle[0] = float(pos);
    for (int64_t i = 1; i < half; ++i) angle[i] = angle[i - 1] * theta_scale;
    for (int64_t i = 0; i < half; ++i) {
      ASSERT_EQ(cs[i], std::cos(angle[i])) << pos << " " << i;
      ASSERT_EQ(sn[i], std::sin(angle[i])) << pos << " " << i;
      // With factors the angle is divided by the pair's factor (one more float rounding).
      ASSERT_EQ(fcs[i], std::cos(angle[i] / factors[i])) << pos << " " << i;
      ASSERT_EQ(fsn[i], std::sin(angle[i] / factors[i])) << pos << " " << i;
      ASSERT_EQ(ocs[i], cs[i]);
      ASSERT_EQ(osn[i], sn[i]);
      const double exact = double(pos) * std::pow(double(theta_scale), double(i));
      const double tol = exact * (i + 1) * kU * 1.01 + 2 * kU;
      ASSERT_NEAR(cs[i], std::cos(exact), tol) << pos << " " << i;
      ASSERT_NEAR(sn[i], std::sin(exact), tol) << pos << " " << i;
      const double exact_f = exact / factors[i];
      const double tol_f = exact_f * (i + 2) * kU * 1.01 + 2 * kU;
      ASSERT_NEAR(fcs[i], std::cos(exact_f), tol_f) << pos << " " << i;
      ASSERT_NEAR(fsn[i], std::sin(exact_f), tol_f) << pos << " " << i;
    }
    if (pos > 0) {
      EXPECT_NE(fcs[1], cs[1]);  // the factors did change the angle
    }
  }
}

// rope_ggml and the plain rope compute the same rotation and differ only in rounding: per
// output, fma rounds once where the plain formula rounds three times, so the two are within a
// few u of |x0·c| + |x1·s| (the bound is on the terms, not the result, which may cancel).
TEST(Ops, RopeGgmlAgreesWithRope) {
  const int64_t n_heads = 4, head_dim = 64, n_rot = 48, half = n_rot / 2;
  std::vector<float> cs(half), sn(half);
  rope_tables_ggml(777, std::pow(10000.0f, -2.0f / float(n_rot)), nullptr, half, cs.data(), sn.data());
  const auto x = gaussian(n_heads * head_dim, 21, 4.0f);
  int differ = 0;
  for (RopeStyle style : {RopeStyle::Neox, RopeStyle::Norm}) {
    std::vector<float> plain = x, ggml = x;
    scalar_kernel_table().rope(plain.data(), n_heads, head_dim, n_rot, cs.data(), sn.data(), style);
    scalar_kernel_table().rope_ggml(ggml.data(), n_heads, head_dim, n_rot, cs.data(), sn.data(), style);
    for (int64_t h = 0; h < n_heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const int64_t i0 = h * head_dim + (style == RopeStyle::Neox ? i : 2 * i);
        const int64_t i1 = h * head_dim + (style == RopeStyle::Neox ? i + half : 2 * i + 1);
        const double terms0 = std::fabs(x[i0] * cs[i]) + std::fabs(x[i1] * sn[i]);
        const double terms1 = std::fabs(x[i0] * sn[i]) + std::fabs(x[i1] * cs[i]);
        ASSERT_NEAR(ggml[i0], plain[i0], 1e-6 * terms0) << i;
        ASSERT_NEAR(ggml[i1], plain[i1], 1e-6 * terms1) << i;
        differ += ggml[i0] != plain[i0];
        differ += ggml[i1] != plain[i1];
      }
    for (int64_t h = 0; h < n_heads; ++h)
      for (int64_t d = n_rot; d < head_dim; ++d) ASSERT_EQ(ggml[h * head_dim + d], plain[h * head_dim + d]);
  }
  // Over 384 pairs the single rounding must show somewhere, or rope_ggml is not ggml's formula.
  EXPECT_GT(differ, 0);
}

// ---- thread pool ---------------------------------------------------------------------------

TEST(ThreadPool, CoversEveryItemOnceWithGrain) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 7, 64, 1001}) {
      for (int64_t grain : {1, 4, 16}) {
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_for(n, [&](int64_t b, int64_t e) {
          EXPECT_EQ(b % grain, 0);
          for (int64_t i = b; i < e; ++i) hits[i]++;
        }, grain);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " " << n << " " << grain;
      }
    }
  }
}

// Shares are claimed by whichever thread gets there first, the caller included (it runs any
// share no worker has started): under many back-to-back jobs, with the caller's own share fast
// or slow, every share must still run exactly once per job, never twice and never for a stale job.
TEST(ThreadPool, EveryShareRunsOnceWhoeverClaimsIt) {
  for (int threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> runs(threads);
    const int jobs = 3000;
    for (int job = 0; job < jobs; ++job) {
      std::vector<std::atomic<int>> hits(threads);
      pool.parallel_for(threads, [&](int64_t b, int64_t e) {
        if (b == 0 && job % 7 == 0)  // a slow caller share: workers finish theirs first
          for (volatile int spin = 0; spin < 20000; ++spin) {}
        for (int64_t i = b; i < e; ++i) {
          hits[i]++;
          runs[i]++;
        }
      });
      for (int i = 0; i < threads; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " threads, job " << job << ", share " << i;
    }
    for (int i = 0; i < threads; ++i) EXPECT_EQ(runs[i].load(), jobs);
  }
}

TEST(ThreadPool, ManySmallJobsAndErrors) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  for (int rep = 0; rep < 2000; ++rep)
    pool.parallel_for(10, [&](int64_t b, int64_t e) { total += e - b; });
  EXPECT_EQ(total.load(), 20000);
  EXPECT_THROW(pool.parallel_for(10, [](int64_t b, int64_t) {
    if (b > 0) throw std::runtime_error("worker failed");
  }), std::runtime_error);
  // Nested calls run serially instead of deadlocking.
  std::atomic<int> inner{0};
  pool.parallel_for(4, [&](int64_t, int64_t) { pool.parallel_for(3, [&](int64_t b, int64_t e) { inner += e - b; }); });
  EXPECT_EQ(inner.load(), 6);
  EXPECT_GE(ThreadPool::default_thread_count(), 1);
}

// Float-weight tiles over column counts that exercise every path of a 16-lane tile: shorter than
// one vector, exact multiples of 16 and 32, an odd number of full 16-blocks, and a long row with
// a tail (2048+7); token counts that hit every token tile (AVX-512: groups of 5 and a remainder
// of 4, 3 or 2; AVX2: pairs) and the single-token decode tile; 13 rows (8-, 4- and 1-row
// tiles). Each ISA within the summation-order tolerance of the reference, and each result
// bit-identical to the same pair computed alone (1 row, 1 token), which is what makes any
// tiling and thread count give the same bits.
TEST(Matmul, FloatTilesOddColumnsAndTokens) {
  ThreadPool one(1), two(2);
  for (GgmlType type : {GgmlType::F16, GgmlType::BF16, GgmlType::F32}) {
    for (int64_t cols : {int64_t{5}, int64_t{16}, int64_t{48}, int64_t{64}, int64_t{203}, int64_t{2048 + 7}}) {
      const int64_t rows = 13;
      auto wbytes = make_weights(type, rows, cols, 51);
      const WeightView w{type, wbytes.data(), rows, cols, type_row_bytes(type, cols)};
      for (int64_t n_tok : {1, 2, 3, 4, 5, 7, 8, 9, 11}) {
        auto x = gaussian(static_cast<size_t>(n_tok * cols), 53);
        std::vector<float> ref(n_tok * rows), got(n_tok * rows);
        matmul(scalar_kernel_table(), w, x.data(), ref.data(), n_tok, one);
        for (Isa isa : available_isas()) {
          const KernelTable& k = *kernels_for(isa);
          matmul(k, w, x.data(), got.data(), n_tok, two);
          for (int64_t t = 0; t < n_tok; ++t)
            for (int64_t r = 0; r < rows; ++r) {
              const double tol = 2.0 * cols * kU * magnitude_bound(type, w.row(r), x.data() + t * cols, cols);
              ASSERT_NEAR(got[t * rows + r], ref[t * rows + r], tol) << ggml_type_name(type) << " "
                  << isa_name(isa) << " cols " << cols << " tokens " << n_tok << " row " << r << " token " << t;
              const WeightView row{type, w.row(r), 1, cols, w.row_bytes};
              float alone = 0.0f;
              matmul(k, row, x.data() + t * cols, &alone, 1, one);
              ASSERT_EQ(alone, got[t * rows + r]) << ggml_type_name(type) << " " << isa_name(isa) << " cols "
                  << cols << " tokens " << n_tok << " row " << r << " token " << t;
            }
        }
      }
    }
  }
}
