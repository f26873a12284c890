// The interleaved layouts of Q4_0, Q8_0, Q4_K, Q6_K, F16 and BF16 weights (kernels/interleave.h)
// and their matmuls (for Q4_0 and Q8_0 in detail here; the K-quants' tests follow InterleaveQ4K,
// the 16-bit floats' InterleaveHalf): the
// layout moves bytes and changes no value (every row reads back as the original), every ISA's
// interleaved kernel gives the scalar reference's bits for every token and group count, integer
// inputs give the plain layout's answer exactly (so byte order, nibble order and offsets are
// right, not merely close), Gaussian data stays within the float-reordering bound of the plain
// reference, and the matmul driver keeps whole tiles per thread whatever the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/interleave.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "kernel_test_data.h"

using namespace billion;
using namespace billion::kernels;
using billion::testing::gaussian;
using billion::testing::make_weights;

namespace {

constexpr double kU = 1.0 / (1 << 24);

struct Interleaved {
  std::vector<uint8_t> bytes;
  WeightView view;
};

Interleaved interleaved(GgmlType type, const std::vector<uint8_t>& plain, int64_t rows, int64_t cols) {
  Interleaved m;
  m.bytes.resize(plain.size());
  const size_t rb = type_row_bytes(type, cols);
  interleave_rows(type, plain.data(), rb, rows, cols, m.bytes.data());
  m.view = {type, m.bytes.data(), rows, cols, rb, WeightLayout::Interleaved16};
  return m;
}

WeightView plain_view(GgmlType type, const std::vector<uint8_t>& w, int64_t rows, int64_t cols) {
  return {type, w.data(), rows, cols, type_row_bytes(type, cols)};
}

// matmul_many of table k over ws (all of `cols` columns) with each thread count gives every
// matrix's output bit for bit as multiplied alone on one thread, for 1 and 6 tokens (seed: the
// activations').
void expect_many_equals_alone(const KernelTable& k, const std::vector<WeightView>& ws, int64_t cols, uint32_t seed,
                              std::initializer_list<int> thread_counts) {
  ThreadPool one(1);
  for (int64_t n_tok : {1, 6}) {
    auto x = gaussian(static_cast<size_t>(n_tok * cols), seed);
    std::vector<std::vector<float>> want(ws.size());
    for (size_t i = 0; i < ws.size(); ++i) {
      want[i].resize(n_tok * ws[i].rows);
      matmul(k, ws[i], x.data(), want[i].data(), n_tok, one);
    }
    for (int threads : thread_counts) {
      ThreadPool pool(threads);
      std::vector<std::vector<float>> got(ws.size());
      std::vector<float*> ys;
      for (size_t i = 0; i < ws.size(); ++i) {
        got[i].assign(want[i].size(), 0.0f);
        ys.push_back(got[i].data());
      }
      matmul_many(k, ws, x.data(), ys, n_tok, pool);
      for (size_t i = 0; i < ws.size(); ++i)
        ASSERT_EQ(0, std::memcmp(got[i].data(), want[i].data(), want[i].size() * 4))
            << isa_name(k.isa) << " matrix " << i << " tokens " << n_tok << " threads " << threads;
    }
  }
}

}  // namespace

class InterleaveTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(InterleaveTest, EveryRowReadsBackUnchanged) {
  const GgmlType type = GetParam();
  const int64_t rows = 48, cols = 32 * 7;
  auto plain = make_weights(type, rows, cols, 1);
  auto m = interleaved(type, plain, rows, cols);
  EXPECT_NE(0, std::memcmp(plain.data(), m.bytes.data(), plain.size()));  // it did move bytes
  std::vector<float> want(cols), got(cols);
  const WeightView p = plain_view(type, plain, rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(type, p.row(r), want.data(), cols);
    dequantize_weight_row(m.view, r, got.data());
    ASSERT_EQ(0, std::memcmp(want.data(), got.data(), cols * 4)) << "row " << r;
    dequantize_weight_row(p, r, got.data());
    ASSERT_EQ(0, std::memcmp(want.data(), got.data(), cols * 4)) << "plain row " << r;
  }
  EXPECT_THROW(dequantize_weight_row(m.view, rows, got.data()), Error);
}

// The documented byte positions (interleave.h): four groups' blocks together in memory order,
// headers before quants; the last tile of 80 rows holds one group. Each header field and quant
// byte of the plain matrix names its row, block and position, so a byte in the wrong place shows.
TEST(Interleave, TilesLieInDecodeOrder) {
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_1}) {
    const int64_t rows = 80, nb = 2, cols = nb * kQK;
    const int64_t hb = type == GgmlType::Q4_1 ? 4 : 2, qb = type == GgmlType::Q4_1 ? 16 : 32, block = hb + qb;
    const int64_t H = 16 * hb, Q = 16 * qb;  // per group and block
    std::vector<uint8_t> plain(rows * nb * block);
    auto at = [&](int64_t r, int64_t b, int64_t k) { return static_cast<uint8_t>(r * 7 + b * 3 + k * 11); };
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t k = 0; k < block; ++k) plain[(r * nb + b) * block + k] = at(r, b, k);
    auto m = interleaved(type, plain, rows, cols);
    for (int64_t g = 0; g < 5; ++g)
      for (int64_t j = 0; j < 16; ++j)
        for (int64_t b = 0; b < nb; ++b) {
          const int64_t r = 16 * g + j;
          // Tile 0: groups 0-3, block b at 4·(H+Q)·b; tile 1 (group 4 alone) at 64 rows' bytes.
          const int64_t G = g < 4 ? 4 : 1, i = g % 4, tile = g < 4 ? 0 : 64 * nb * block;
          const int64_t blk = tile + b * G * (H + Q);
          for (int64_t f = 0; f < hb / 2; ++f)
            for (int k = 0; k < 2; ++k)
              ASSERT_EQ(m.bytes[blk + i * H + f * 32 + 2 * j + k], at(r, b, 2 * f + k)) << ggml_type_name(type) << " row " << r;
          for (int64_t s = 0; s < qb / 4; ++s)
            for (int k = 0; k < 4; ++k)
              ASSERT_EQ(m.bytes[blk + G * H + i * Q + 64 * s + 4 * j + k], at(r, b, hb + 4 * s + k))
                  << ggml_type_name(type) << " row " << r << " block " << b << " step " << s;
        }
    const BlockTiles t = block_tiles(type, rows, cols);
    EXPECT_EQ(t.tiles(), 2);
    EXPECT_EQ(t.tile_groups(1), 1);
    EXPECT_EQ(t.quants(0, 2), 4 * H + 2 * Q);
    EXPECT_EQ(t.header(1, 0), 64 * nb * block);
  }
}

TEST(Interleave, RejectsShapesAndTypesItCannotHold) {
  EXPECT_TRUE(can_interleave(GgmlType::Q4_0, 16, 32));
  EXPECT_TRUE(can_interleave(GgmlType::Q8_0, 16, 32));
  EXPECT_FALSE(can_interleave(GgmlType::Q4_0, 24, 64));  // not whole groups
  EXPECT_FALSE(can_interleave(GgmlType::Q4_0, 16, 48));  // not whole blocks
  EXPECT_FALSE(can_interleave(GgmlType::Q4_0, 0, 32));
  EXPECT_FALSE(can_interleave(GgmlType::Q5_0, 16, 32));  // no layout for this type
  EXPECT_FALSE(can_interleave(GgmlType::F32, 16, 32));
  std::vector<uint8_t> src(34 * 24), dst(34 * 24);
  EXPECT_THROW(interleave_rows(GgmlType::Q4_0, src.data(), 18, 24, 32, dst.data()), Error);
  EXPECT_THROW(interleave_rows(GgmlType::Q5_0, src.data(), 22, 16, 32, dst.data()), Error);
  // The driver refuses an interleaved view that does not hold whole groups, or of another type.
  std::vector<float> x(32), y(24);
  ThreadPool pool(1);
  const WeightView bad{GgmlType::Q4_0, dst.data(), 24, 32, 18, WeightLayout::Interleaved16};
  EXPECT_THROW(matmul(bad, x.data(), y.data(), 1, pool), Error);
  const WeightView other{GgmlType::Q4_1, dst.data(), 16, 32, 20, WeightLayout::Interleaved16};
  EXPECT_THROW(matmul(other, x.data(), y.data(), 1, pool), Error);
}

// Integer inputs (scale 1, activation blocks whose largest magnitude is 127, small sums) make all
// float arithmetic exact, so the interleaved kernels of every ISA must give exactly the plain
// layout reference's values: a wrong byte, nibble, element order or offset cannot hide in
// rounding. Activations are at most 20 in magnitude but one 127 per block, so every partial sum
// stays below 64 blocks · 128 · (31·20 + 127) < 2^23: exact in float.
TEST_P(InterleaveTest, IntegerInputsEqualPlainLayoutOnEveryIsa) {
  const GgmlType type = GetParam();
  std::mt19937 rng(5);
  ThreadPool pool(2);
  for (int64_t nb : {1, 2, 7, 18, 64}) {
    const int64_t cols = nb * kQK;
    for (int64_t rows : {16, 80}) {  // one group; five (decode's four-group tile and a lone one)
      std::vector<uint8_t> plain(rows * type_row_bytes(type, cols));
      for (auto& v : plain) v = static_cast<uint8_t>(rng());  // Q8_0: -128 included, a file may hold it
      const uint16_t one = f32_to_f16(1.0f);
      for (size_t off = 0; off < plain.size(); off += type_block_bytes(type)) std::memcpy(&plain[off], &one, 2);
      auto m = interleaved(type, plain, rows, cols);
      for (int64_t n_tok : {1, 3, 9, 17}) {
        std::vector<float> x(static_cast<size_t>(n_tok * cols));
        for (int64_t b = 0; b < n_tok * nb; ++b) {
          float* blk = x.data() + b * kQK;
          for (int j = 0; j < kQK; ++j) blk[j] = static_cast<float>(static_cast<int>(rng() % 41) - 20);
          blk[rng() % kQK] = (rng() & 1) ? 127.0f : -127.0f;
        }
        std::vector<float> want(n_tok * rows), got(n_tok * rows);
        matmul(scalar_kernel_table(), plain_view(type, plain, rows, cols), x.data(), want.data(), n_tok, pool);
        for (Isa isa : available_isas()) {
          matmul(*kernels_for(isa), m.view, x.data(), got.data(), n_tok, pool);
          for (int64_t i = 0; i < n_tok * rows; ++i)
            ASSERT_EQ(got[i], want[i]) << isa_name(isa) << " blocks " << nb << " rows " << rows << " token "
                                       << i / rows << " row " << i % rows;
        }
      }
    }
  }
}

namespace {

// A matrix whose quant bytes are all `bits` (scales 1), against x (n_tok rows of constant
// sign, or the mixed pattern for sign 0): every ISA's interleaved matmul gives the reference's
// bits. Returns the reference's first output.
float expect_uniform_blocks_equal_reference(GgmlType type, int64_t rows, int64_t cols, uint8_t bits, float sign,
                                            int64_t n_tok, ThreadPool& pool) {
  std::vector<uint8_t> plain(rows * type_row_bytes(type, cols), bits);
  const uint16_t one = f32_to_f16(1.0f);
  for (size_t off = 0; off < plain.size(); off += type_block_bytes(type)) std::memcpy(&plain[off], &one, 2);
  auto m = interleaved(type, plain, rows, cols);
  std::vector<float> x(n_tok * cols);
  for (size_t i = 0; i < x.size(); ++i) x[i] = sign != 0.0f ? sign : (i % 3 ? 1.0f : -1.0f);
  std::vector<float> want(n_tok * rows), got(n_tok * rows);
  matmul(scalar_kernel_table(), m.view, x.data(), want.data(), n_tok, pool);
  for (Isa isa : available_isas()) {
    matmul(*kernels_for(isa), m.view, x.data(), got.data(), n_tok, pool);
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4))
        << ggml_type_name(type) << " " << isa_name(isa) << " bytes " << int(bits) << " sign " << sign << " tokens " << n_tok;
  }
  return want[0];
}

// On Gaussian activations (seed) every ISA's matmul of w, on 1 and 2 threads, gives the scalar
// table's bits.
void expect_every_isa_equals_reference(const WeightView& w, int64_t n_tok, uint32_t seed) {
  ThreadPool one(1), two(2);
  auto x = gaussian(static_cast<size_t>(n_tok * w.cols), seed);
  std::vector<float> want(n_tok * w.rows), got(n_tok * w.rows);
  matmul(scalar_kernel_table(), w, x.data(), want.data(), n_tok, one);
  for (Isa isa : available_isas())
    for (ThreadPool* pool : {&one, &two}) {
      std::fill(got.begin(), got.end(), -1.0f);
      matmul(*kernels_for(isa), w, x.data(), got.data(), n_tok, *pool);
      ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4))
          << isa_name(isa) << " blocks " << w.cols / kQK << " rows " << w.rows << " tokens " << n_tok << " threads "
          << pool->size();
    }
}

}  // namespace

// The largest integers a Q4_0 block can give: every nibble 15 (or 0) against activations ±127.
// The AVX2 tile adds eight maddubs results in int16 (2·15·127 each, 30480 in all, just under
// 2^15), so a width slip there would show as a wrapped sum.
TEST(InterleaveQ4_0, ExtremeValuesEqualReference) {
  const int64_t cols = kQK * 64;
  ThreadPool pool(1);
  for (uint8_t bits : {uint8_t{0xFF}, uint8_t{0x00}})
    for (float sign : {1.0f, -1.0f, 0.0f})
      for (int64_t n_tok : {1, 3, 8}) {
        const float y0 = expect_uniform_blocks_equal_reference(GgmlType::Q4_0, 32, cols, bits, sign, n_tok, pool);
        // and the exact value for the all-one-sign inputs: 64 blocks of 32 · (nibble - 8) · ±127 · d_a
        if (sign != 0.0f) {
          EXPECT_NEAR(y0, sign * (bits ? 7.0f : -8.0f) * cols, 1e-3 * cols) << int(bits);
        }
      }
}

// The largest products a Q8_0 block can give against every tile: weights -128 (a file may hold
// it) or 127 against activations ±127, so that each int16 pair of the AVX2 tiles reaches
// 2·128·127 and a block 16 of them; a wrapped or saturated sum would show. 20 tokens: the
// token tiles (a full one and a partial one) and, below 16, the other prefill tile.
TEST(InterleaveQ8_0, ExtremeValuesEqualReference) {
  const int64_t cols = kQK * 64;
  ThreadPool pool(2);
  for (uint8_t bits : {uint8_t{0x80}, uint8_t{0x7F}})
    for (float sign : {1.0f, -1.0f})
      for (int64_t n_tok : {3, 20}) {
        const float y0 = expect_uniform_blocks_equal_reference(GgmlType::Q8_0, 64, cols, bits, sign, n_tok, pool);
        // and the value: 64 blocks of 32 · w · ±127 · d_a, d_a = 1/127 as fp16 (ggml's rounding)
        EXPECT_NEAR(y0, sign * (bits == 0x80 ? -128.0f : 127.0f) * cols, 1e-3 * 128 * cols) << int(bits);
      }
}

// A token tile holds the documented bytes (interleave.h): pair k of block b, token j at
// b·kTokenTileBlockBytes + 64k + 4j as two int16, the d's after the pairs, zeros past the last
// token. Each quantized byte names its token, block and element.
TEST(Interleave, TokenTileLiesAsDocumented) {
  const int64_t nb = 3, n_tokens = 21;
  const size_t row_bytes = nb * sizeof(BlockQ8A);
  std::vector<uint8_t> q8a(n_tokens * row_bytes);
  auto at = [](int64_t t, int64_t b, int e) { return static_cast<int8_t>((t * 5 + b * 3 + e * 7) % 255 - 127); };
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      auto* blk = reinterpret_cast<BlockQ8A*>(q8a.data() + t * row_bytes) + b;
      blk->d = 0.5f + static_cast<float>(t * nb + b);
      for (int e = 0; e < kQK; ++e) blk->qs[e] = at(t, b, e);
    }
  std::vector<uint8_t> tile(nb * kTokenTileBlockBytes, 0xAB);
  for (int64_t i = 0; i < 2; ++i) {
    q8a_token_tile(q8a.data(), row_bytes, n_tokens, nb, i, tile.data());
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t j = 0; j < kTokenTile; ++j) {
        const int64_t t = kTokenTile * i + j;
        const uint8_t* blk = tile.data() + b * kTokenTileBlockBytes;
        float d;
        std::memcpy(&d, blk + kTokenTile * 64 + 4 * j, 4);
        EXPECT_EQ(d, t < n_tokens ? 0.5f + static_cast<float>(t * nb + b) : 0.0f) << "token " << t << " block " << b;
        for (int k = 0; k < kQK / 2; ++k) {
          int16_t pair[2];
          std::memcpy(pair, blk + 64 * k + 4 * j, 4);
          for (int e = 0; e < 2; ++e)
            ASSERT_EQ(pair[e], t < n_tokens ? at(t, b, 2 * k + e) : 0) << "token " << t << " block " << b << " pair " << k;
        }
      }
  }
}

// Batches longer than the driver's token chunk for the AVX2 Q8_0 token tiles (1 MiB of tiles:
// 240 tokens at 2048 columns) go through the kernel in several chunks, each starting at a tile.
TEST(InterleaveQ8_0, TokenChunksGiveTheReferenceBits) {
  const int64_t rows = 64, cols = 2048;
  auto m = interleaved(GgmlType::Q8_0, make_weights(GgmlType::Q8_0, rows, cols, 3), rows, cols);
  expect_every_isa_equals_reference(m.view, 261, 12);
}

// On Gaussian data every ISA's interleaved kernel equals the interleaved reference bit for bit,
// for token counts that hit every prefill tile (8, 7 .. 1 tokens), the AVX2 Q8_0 token tiles
// (16 tokens, 17 and 40: partial last tiles) and decode, group counts that hit decode's
// four-group tile and its remainder, odd block counts, and 1 or 2 threads.
TEST_P(InterleaveTest, EveryIsaBitIdenticalToReference) {
  const GgmlType type = GetParam();
  for (int64_t nb : {1, 3, 18, 64}) {
    const int64_t cols = nb * kQK;
    for (int64_t rows : {16, 48, 80, 96, 112, 256}) {  // tiles of 1, 3, 4+1, 4+2, 4+3, 4·4 groups
      auto plain = make_weights(type, rows, cols, uint32_t(7 + nb + rows));
      auto m = interleaved(type, plain, rows, cols);
      for (int64_t n_tok : {1, 2, 3, 7, 8, 9, 16, 17, 40}) {
        expect_every_isa_equals_reference(m.view, n_tok, 11);
        if (::testing::Test::HasFailure()) return;
      }
    }
  }
}

// The interleaved arithmetic (one fma per block) and the plain layout's reference (ggml's
// product order, sum left to right) add the same exact per-block terms in different float
// orders, so they agree within 2·cols·u·Σ|term| (the bound test_kernels.cpp explains).
TEST_P(InterleaveTest, ReferenceAgreesWithPlainLayout) {
  const GgmlType type = GetParam();
  const int64_t rows = 32, cols = 32 * 64;
  auto plain = make_weights(type, rows, cols, 3);
  auto m = interleaved(type, plain, rows, cols);
  const int64_t n_tok = 3;
  auto x = gaussian(static_cast<size_t>(n_tok * cols), 4);
  std::vector<float> a(n_tok * rows), b(n_tok * rows), deq(cols);
  ThreadPool pool(1);
  matmul(scalar_kernel_table(), plain_view(type, plain, rows, cols), x.data(), a.data(), n_tok, pool);
  matmul(scalar_kernel_table(), m.view, x.data(), b.data(), n_tok, pool);
  int differing = 0;
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_weight_row(m.view, r, deq.data());
      double bound = 0.0;  // Σ over blocks of max|weight|·max|activation|·32, twice for the offsets
      for (int64_t i = 0; i < cols; i += kQK) {
        double wmax = 0.0, amax = 0.0;
        for (int64_t j = i; j < i + kQK; ++j) {
          wmax = std::max(wmax, double(std::fabs(deq[j])));
          amax = std::max(amax, double(std::fabs(x[t * cols + j])));
        }
        bound += 2.0 * wmax * amax * kQK;
      }
      const float pa = a[t * rows + r], pb = b[t * rows + r];
      ASSERT_NEAR(pa, pb, 2.0 * cols * kU * bound) << "token " << t << " row " << r;
      differing += pa != pb;
    }
  // The orders really differ (else this test would not be checking the bound of anything).
  EXPECT_GT(differing, 0);
}

// matmul_many hands out whole groups of an interleaved matrix beside plain ones: each output
// equals that matrix multiplied alone, for several thread counts.
TEST(Interleave, ManyMixesLayoutsAndTypes) {
  const int64_t cols = 32 * 18;
  auto q = make_weights(GgmlType::Q4_0, 576, cols, 21), k = make_weights(GgmlType::Q8_0, 192, cols, 22),
       v = make_weights(GgmlType::Q4_0, 40, cols, 23);
  auto qi = interleaved(GgmlType::Q4_0, q, 576, cols), ki = interleaved(GgmlType::Q8_0, k, 192, cols);
  const std::vector<WeightView> ws = {qi.view, ki.view, plain_view(GgmlType::Q4_0, v, 40, cols)};
  for (Isa isa : available_isas()) expect_many_equals_alone(*kernels_for(isa), ws, cols, 24, {1, 2, 3});
}

INSTANTIATE_TEST_SUITE_P(Types, InterleaveTest, ::testing::Values(GgmlType::Q4_0, GgmlType::Q8_0),
                         [](const auto& info) { return std::string(ggml_type_name(info.param)); });

namespace {

// Every row of a K-quant matrix of nb super-blocks per row reads back byte for byte, in the
// file's layout and as floats.
void check_kquant_read_back(GgmlType type, int64_t nb, uint32_t seed) {
  const int64_t rows = 48, cols = kQKK * nb;
  auto plain = make_weights(type, rows, cols, seed);
  auto m = interleaved(type, plain, rows, cols);
  EXPECT_NE(0, std::memcmp(plain.data(), m.bytes.data(), plain.size()));
  const size_t rb = type_row_bytes(type, cols);
  std::vector<uint8_t> row(rb);
  std::vector<float> want(cols), got(cols);
  for (int64_t r = 0; r < rows; ++r) {
    interleaved_row_bytes(type, m.bytes.data(), rows, cols, r, row.data());
    ASSERT_EQ(0, std::memcmp(row.data(), plain.data() + r * rb, rb)) << "super-blocks " << nb << " row " << r;
    dequantize_row(type, plain.data() + r * rb, want.data(), cols);
    dequantize_weight_row(m.view, r, got.data());
    ASSERT_EQ(0, std::memcmp(want.data(), got.data(), cols * 4)) << "super-blocks " << nb << " row " << r;
  }
}

// Every ISA's interleaved K-quant kernel gives the plain scalar reference's bits: token counts
// that hit every tile (8, 7 .. 1 tokens, decode), super-block counts odd and even, as in the
// target models' rows (8: 2048 columns, 22: 5632), 1 or 2 threads.
void check_kquant_bit_identity(GgmlType type, uint32_t weight_seed, uint32_t activation_seed) {
  ThreadPool one(1), two(2);
  for (int64_t nb : {1, 3, 8, 22}) {
    const int64_t cols = nb * kQKK;
    for (int64_t rows : {16, 48, 256}) {
      auto plain = make_weights(type, rows, cols, uint32_t(weight_seed + nb + rows));
      auto m = interleaved(type, plain, rows, cols);
      for (int64_t n_tok : {1, 2, 3, 7, 8, 9, 17}) {
        auto x = gaussian(static_cast<size_t>(n_tok * cols), uint32_t(activation_seed + n_tok));
        std::vector<float> want(n_tok * rows), got(n_tok * rows);
        matmul(scalar_kernel_table(), plain_view(type, plain, rows, cols), x.data(), want.data(), n_tok, one);
        for (Isa isa : available_isas())
          for (ThreadPool* pool : {&one, &two}) {
            std::fill(got.begin(), got.end(), -1.0f);
            matmul(*kernels_for(isa), m.view, x.data(), got.data(), n_tok, *pool);
            ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4))
                << isa_name(isa) << " super-blocks " << nb << " rows " << rows << " tokens " << n_tok << " threads "
                << pool->size();
          }
      }
    }
  }
}

}  // namespace

// Q4_K is interleaved per super-block (interleave.h): every row reads back byte for byte, in the
// file's layout and as floats.
TEST(InterleaveQ4K, EveryRowReadsBackUnchanged) { check_kquant_read_back(GgmlType::Q4_K, 3, 2); }

// The interleaved Q4_K arithmetic is the plain layout's (exact integers per super-block, then
// the same float expression), so every ISA's interleaved kernel must give the plain reference's
// bits: for token counts that hit every tile (8, 7 .. 1 tokens, decode), super-block counts of
// the target models' rows (8: 2048 columns, 22: 5632), 1 or 2 threads.
TEST(InterleaveQ4K, EveryIsaBitIdenticalToPlainReference) { check_kquant_bit_identity(GgmlType::Q4_K, 31, 5); }

// The largest integers the kernel can meet: every nibble 15, every scale and min 63, every
// activation ±127 (and mixed signs), where a sign or width slip in the integer path would show.
TEST(InterleaveQ4K, ExtremeValuesEqualPlainReference) {
  const GgmlType type = GgmlType::Q4_K;
  const int64_t rows = 32, cols = kQKK * 22;
  std::vector<uint8_t> plain(rows * type_row_bytes(type, cols), 0xFF);
  const uint16_t d = f32_to_f16(0.01f), dmin = f32_to_f16(0.002f);
  for (size_t off = 0; off < plain.size(); off += sizeof(BlockQ4_K)) {
    std::memcpy(&plain[off], &d, 2);
    std::memcpy(&plain[off + 2], &dmin, 2);
  }
  auto m = interleaved(type, plain, rows, cols);
  ThreadPool pool(1);
  for (float sign : {1.0f, -1.0f, 0.0f}) {
    std::vector<float> x(3 * cols);
    for (size_t i = 0; i < x.size(); ++i) x[i] = sign != 0.0f ? sign : (i % 3 ? 1.0f : -1.0f);
    std::vector<float> want(3 * rows), got(3 * rows);
    matmul(scalar_kernel_table(), plain_view(type, plain, rows, cols), x.data(), want.data(), 3, pool);
    for (Isa isa : available_isas()) {
      matmul(*kernels_for(isa), m.view, x.data(), got.data(), 3, pool);
      ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4)) << isa_name(isa) << " sign " << sign;
      matmul(*kernels_for(isa), m.view, x.data(), got.data(), 1, pool);  // decode's tile
      ASSERT_EQ(0, std::memcmp(got.data(), want.data(), rows * 4)) << isa_name(isa) << " sign " << sign;
    }
  }
}

TEST(InterleaveQ4K, ShapesAndTables) {
  EXPECT_TRUE(can_interleave(GgmlType::Q4_K, 16, 256));
  EXPECT_FALSE(can_interleave(GgmlType::Q4_K, 16, 128));  // not whole super-blocks
  EXPECT_FALSE(can_interleave(GgmlType::Q4_K, 8, 256));
  EXPECT_FALSE(can_interleave(GgmlType::Q5_K, 16, 256));  // no layout for this type
  // The loader asks the table: the reference never wants a re-lay; AVX2 and AVX-512 want Q4_K.
  EXPECT_FALSE(wants_interleaved(scalar_kernel_table(), GgmlType::Q4_K, 16, 256));
  EXPECT_FALSE(wants_interleaved(scalar_kernel_table(), GgmlType::Q4_0, 16, 32));
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    const KernelTable* k = kernels_for(isa);
    if (!k) continue;
    EXPECT_TRUE(wants_interleaved(*k, GgmlType::Q4_K, 16, 256)) << isa_name(isa);
    EXPECT_TRUE(wants_interleaved(*k, GgmlType::Q4_0, 16, 32));
    EXPECT_FALSE(wants_interleaved(*k, GgmlType::Q4_K, 16, 128));
  }
  std::vector<uint8_t> src(144 * 16), dst(144 * 16);
  EXPECT_THROW(interleave_rows(GgmlType::Q4_K, src.data(), 72, 16, 128, dst.data()), Error);
}

// matmul_many with an interleaved Q4_K matrix beside an interleaved Q4_0 and a plain Q4_K one
// (Q8K and Q8A activations in one call): each output equals its matrix multiplied alone.
TEST(InterleaveQ4K, ManyMixesLayoutsAndTypes) {
  const int64_t cols = kQKK * 2;
  auto q = make_weights(GgmlType::Q4_K, 320, cols, 41), k = make_weights(GgmlType::Q4_0, 64, cols, 42),
       v = make_weights(GgmlType::Q4_K, 36, cols, 43);
  auto qi = interleaved(GgmlType::Q4_K, q, 320, cols), ki = interleaved(GgmlType::Q4_0, k, 64, cols);
  const std::vector<WeightView> ws = {qi.view, ki.view, plain_view(GgmlType::Q4_K, v, 36, cols)};
  for (Isa isa : available_isas()) expect_many_equals_alone(*kernels_for(isa), ws, cols, 44, {2});
}

// Q8_0 and Q4_1 interleaved in ggml's order (WeightLayout::Interleaved16Ggml: a tied Q8_0 output
// matrix, Q4_1 matrices):
// its reference, every ISA's kernel and the plain layout's SIMD tiles (ggml's AVX2 vec_dot
// sequence, which llama.cpp computes) give the same bits, for decode's two-group tile and its
// lone group, prefill's token pairs and a lone token, 1 and 2 threads.
namespace {
void check_ggml_order(GgmlType type) {
  SCOPED_TRACE(ggml_type_name(type));
  ThreadPool one(1), two(2);
  const KernelTable* avx2 = kernels_for(Isa::Avx2);
  for (int64_t nb : {1, 3, 18, 64}) {
    const int64_t cols = nb * kQK;
    for (int64_t rows : {16, 48, 80, 96, 112, 320}) {  // tiles of 1, 3, 4+1, 4+2, 4+3 groups; 5 tiles
      std::vector<uint8_t> plain = make_weights(type, rows, cols, uint32_t(51 + nb + rows));
      if (type == GgmlType::Q8_0)  // -128 bytes too: a file may hold them, and the offset must not overflow
        for (size_t off = 0; off < plain.size(); off += 97) plain[off] = off % sizeof(BlockQ8_0) < 2 ? plain[off] : 0x80;
      Interleaved m = interleaved(type, plain, rows, cols);
      m.view.layout = WeightLayout::Interleaved16Ggml;
      for (int64_t n_tok : {1, 2, 3, 5}) {
        auto x = gaussian(static_cast<size_t>(n_tok * cols), uint32_t(9 + n_tok));
        std::vector<float> want(n_tok * rows), got(n_tok * rows);
        matmul(scalar_kernel_table(), m.view, x.data(), want.data(), n_tok, one);
        if (avx2) {  // the plain layout's AVX2 tile: ggml's sequence
          matmul(*avx2, plain_view(type, plain, rows, cols), x.data(), got.data(), n_tok, one);
          ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4)) << "plain avx2, blocks " << nb << " rows " << rows << " tokens " << n_tok;
        }
        for (Isa isa : available_isas())
          for (ThreadPool* pool : {&one, &two}) {
            std::fill(got.begin(), got.end(), -1.0f);
            matmul(*kernels_for(isa), m.view, x.data(), got.data(), n_tok, *pool);
            ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4))
                << isa_name(isa) << " blocks " << nb << " rows " << rows << " tokens " << n_tok << " threads " << pool->size();
            matmul(*kernels_for(isa), plain_view(type, plain, rows, cols), x.data(), got.data(), n_tok, *pool);
            if (isa != Isa::Scalar) {  // the scalar plain tile sums left to right, not in ggml's lanes
              ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4)) << "plain " << isa_name(isa);
            }
          }
      }
      std::vector<float> a(cols), b(cols);
      dequantize_weight_row(m.view, rows - 1, a.data());
      dequantize_row(type, plain.data() + (rows - 1) * type_row_bytes(type, cols), b.data(), cols);
      ASSERT_EQ(0, std::memcmp(a.data(), b.data(), cols * 4));
      const size_t rb = type_row_bytes(type, cols);
      std::vector<uint8_t> row(rb);
      for (int64_t r = 0; r < rows; ++r) {  // the layout moves bytes and changes none
        interleaved_row_bytes(type, m.bytes.data(), rows, cols, r, row.data());
        ASSERT_EQ(0, std::memcmp(row.data(), plain.data() + r * rb, rb)) << "row " << r;
      }
    }
  }
}
}  // namespace

TEST(InterleaveGgmlOrder, Q8_0BitIdenticalToThePlainSimdTiles) { check_ggml_order(GgmlType::Q8_0); }
TEST(InterleaveGgmlOrder, Q4_1BitIdenticalToThePlainSimdTiles) { check_ggml_order(GgmlType::Q4_1); }

// Q6_K is interleaved per super-block, with the d's of even and odd super-blocks placed apart
// (interleave.h): every row reads back byte for byte, in the file's layout and as floats, for odd
// and even super-block counts.
TEST(InterleaveQ6K, EveryRowReadsBackUnchanged) {
  for (int64_t nb : {1, 2, 3}) check_kquant_read_back(GgmlType::Q6_K, nb, uint32_t(2 + nb));
}

// The interleaved Q6_K arithmetic is the plain layout's (an exact integer per super-block, then
// the same float expression), so every ISA's interleaved kernel must give the plain reference's
// bits: for token counts that hit every tile (8, 7 .. 1 tokens, decode), super-block counts odd
// and even, as in the target models' rows (8: 2048 columns, 22: 5632), 1 or 2 threads. The
// random bytes of make_weights give every 6-bit value and int8 scale, -128 included.
TEST(InterleaveQ6K, EveryIsaBitIdenticalToPlainReference) { check_kquant_bit_identity(GgmlType::Q6_K, 61, 9); }

// The largest integers the kernel can meet: every 6-bit value 0 (q − 32 = −32) or 63 (31), the
// scales 127, −128 and −127 (in turn by sub-block, shifted by one on each row), every
// activation ±127 (and mixed signs), where a sign, offset or width slip in the integer path
// would show.
TEST(InterleaveQ6K, ExtremeValuesEqualPlainReference) {
  const GgmlType type = GgmlType::Q6_K;
  const int64_t rows = 32, nb = 22, cols = kQKK * nb;
  const size_t rb = type_row_bytes(type, cols);
  const uint16_t d = f32_to_f16(0.01f);
  ThreadPool pool(1);
  for (uint8_t bits : {uint8_t{0x00}, uint8_t{0xFF}}) {
    std::vector<uint8_t> plain(rows * rb, bits);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t b = 0; b < nb; ++b) {
        auto* block = reinterpret_cast<BlockQ6_K*>(&plain[r * rb + b * sizeof(BlockQ6_K)]);
        for (int j = 0; j < 16; ++j) {
          const int k = static_cast<int>((j + r) % 3);
          block->scales[j] = static_cast<int8_t>(k == 0 ? 127 : k == 1 ? -128 : -127);
        }
        std::memcpy(&block->d, &d, 2);
      }
    auto m = interleaved(type, plain, rows, cols);
    for (float sign : {1.0f, -1.0f, 0.0f}) {
      std::vector<float> x(3 * cols);
      for (size_t i = 0; i < x.size(); ++i) x[i] = sign != 0.0f ? sign : (i % 3 ? 1.0f : -1.0f);
      std::vector<float> want(3 * rows), got(3 * rows);
      matmul(scalar_kernel_table(), plain_view(type, plain, rows, cols), x.data(), want.data(), 3, pool);
      for (Isa isa : available_isas()) {
        matmul(*kernels_for(isa), m.view, x.data(), got.data(), 3, pool);
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4))
            << isa_name(isa) << " bits " << int(bits) << " sign " << sign;
        matmul(*kernels_for(isa), m.view, x.data(), got.data(), 1, pool);  // decode's tile
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), rows * 4)) << isa_name(isa) << " bits " << int(bits) << " sign " << sign;
      }
    }
  }
}

TEST(InterleaveQ6K, ShapesAndTables) {
  EXPECT_TRUE(can_interleave(GgmlType::Q6_K, 16, 256));
  EXPECT_TRUE(can_interleave(GgmlType::Q6_K, 32000, 2048));  // TinyLlama's output matrix
  EXPECT_FALSE(can_interleave(GgmlType::Q6_K, 16, 128));     // not whole super-blocks
  EXPECT_FALSE(can_interleave(GgmlType::Q6_K, 8, 256));
  // The loader asks the table: the reference keeps the file's rows; AVX2 and AVX-512 re-lay Q6_K.
  EXPECT_FALSE(wants_interleaved(scalar_kernel_table(), GgmlType::Q6_K, 16, 256));
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    const KernelTable* k = kernels_for(isa);
    if (!k) continue;
    EXPECT_TRUE(wants_interleaved(*k, GgmlType::Q6_K, 16, 256)) << isa_name(isa);
    EXPECT_FALSE(wants_interleaved(*k, GgmlType::Q6_K, 16, 128)) << isa_name(isa);
    EXPECT_FALSE(wants_interleaved(*k, GgmlType::Q6_K, 24, 256)) << isa_name(isa);
  }
  std::vector<uint8_t> src(210 * 16), dst(210 * 16);
  EXPECT_THROW(interleave_rows(GgmlType::Q6_K, src.data(), 105, 16, 128, dst.data()), Error);
}

// matmul_many with an interleaved Q6_K matrix beside an interleaved Q4_K, an interleaved Q4_0
// and a plain Q6_K one (Q8K and Q8A activations in one call): each output equals its matrix
// multiplied alone.
TEST(InterleaveQ6K, ManyMixesLayoutsAndTypes) {
  const int64_t cols = kQKK * 2;
  auto o = make_weights(GgmlType::Q6_K, 320, cols, 51), q = make_weights(GgmlType::Q4_K, 48, cols, 52),
       k = make_weights(GgmlType::Q4_0, 64, cols, 53), v = make_weights(GgmlType::Q6_K, 36, cols, 54);
  auto oi = interleaved(GgmlType::Q6_K, o, 320, cols), qi = interleaved(GgmlType::Q4_K, q, 48, cols),
       ki = interleaved(GgmlType::Q4_0, k, 64, cols);
  const std::vector<WeightView> ws = {oi.view, qi.view, ki.view, plain_view(GgmlType::Q6_K, v, 36, cols)};
  for (Isa isa : available_isas()) expect_many_equals_alone(*kernels_for(isa), ws, cols, 55, {2});
}

// F16 and BF16 in runs of four rows, eight columns per 64-byte step (interleave.h).
namespace {
const GgmlType kHalfTypes[] = {GgmlType::F16, GgmlType::BF16};
}

// Each element of the plain matrix names its row and column, so an element in the wrong place
// shows; every row reads back as floats equal to the file's.
TEST(InterleaveHalf, RunsOfFourRowsEightColumnsAStep) {
  for (GgmlType type : kHalfTypes) {
    const int64_t rows = 32, cols = 24;
    std::vector<uint8_t> plain(rows * cols * 2);
    auto* p = reinterpret_cast<uint16_t*>(plain.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < cols; ++i) p[r * cols + i] = static_cast<uint16_t>(0x3C00 + r * cols + i);
    auto m = interleaved(type, plain, rows, cols);
    const auto* got = reinterpret_cast<const uint16_t*>(m.bytes.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < cols; ++i) {
        const int64_t run = r / 4, j = r % 4, step = i / 8;
        ASSERT_EQ(got[run * 4 * cols + step * 32 + j * 8 + i % 8], p[r * cols + i]) << ggml_type_name(type) << " row " << r << " col " << i;
      }
    std::vector<float> want(cols), back(cols);
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(type, plain.data() + r * cols * 2, want.data(), cols);
      dequantize_weight_row(m.view, r, back.data());
      ASSERT_EQ(0, std::memcmp(want.data(), back.data(), cols * 4)) << ggml_type_name(type) << " row " << r;
    }
  }
}

// Each table's interleaved kernel gives its plain tile's bits (the reference's for the
// reference). Token counts hit every tile (AVX2: 3, 2, 1 tokens; AVX-512: 5, 4, 3, 2, 1); 1-3
// threads share out runs of four rows (chunks of 4 rows for 16-48 rows); column counts with and
// without a half block (AVX-512's 16-column blocks: 8 is a tail alone, 24 a block and a tail).
TEST(InterleaveHalf, EveryIsaBitIdenticalToItsPlainTile) {
  ThreadPool one(1), two(2), three(3);
  for (GgmlType type : kHalfTypes)
    for (int64_t cols : {8, 24, 2056})
      for (int64_t rows : {16, 48, 96}) {
        auto plain = make_weights(type, rows, cols, uint32_t(cols + rows));
        auto m = interleaved(type, plain, rows, cols);
        const WeightView pv = plain_view(type, plain, rows, cols);
        for (int64_t n_tok : {1, 2, 3, 4, 5, 7, 9}) {
          auto x = gaussian(static_cast<size_t>(n_tok * cols), 5);
          for (Isa isa : available_isas()) {
            const KernelTable& k = *kernels_for(isa);
            std::vector<float> want(n_tok * rows), got(n_tok * rows);
            matmul(k, pv, x.data(), want.data(), n_tok, one);
            for (ThreadPool* pool : {&one, &two, &three}) {
              std::fill(got.begin(), got.end(), -1.0f);
              matmul(k, m.view, x.data(), got.data(), n_tok, *pool);
              ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4))
                  << ggml_type_name(type) << " " << isa_name(isa) << " cols " << cols << " rows " << rows
                  << " tokens " << n_tok << " threads " << pool->size();
            }
          }
        }
      }
}

// Which tables want the layout (AVX2's; dispatch.cpp says why not AVX-512's), and the shapes it holds: rows in whole 16-row groups (as every
// interleaved matrix), columns in whole 8-column steps. A matrix of runs mixes with plain and
// quantized ones in one matmul_many.
TEST(InterleaveHalf, ShapesTablesAndMixes) {
  for (GgmlType type : kHalfTypes) {
    EXPECT_TRUE(can_interleave(type, 16, 8));
    EXPECT_FALSE(can_interleave(type, 16, 12));
    EXPECT_FALSE(can_interleave(type, 20, 8));
    EXPECT_EQ(interleaved_share_rows(type), 4);
    EXPECT_FALSE(wants_interleaved(scalar_kernel_table(), type, 16, 8));
    if (const KernelTable* k = kernels_for(Isa::Avx2)) {
      EXPECT_TRUE(wants_interleaved(*k, type, 16, 8));
      EXPECT_FALSE(wants_interleaved(*k, type, 16, 12));
    }
    if (const KernelTable* k = kernels_for(Isa::Avx512)) EXPECT_FALSE(wants_interleaved(*k, type, 16, 8));
  }
  std::vector<uint8_t> src(16 * 12 * 2), dst(src.size());
  EXPECT_THROW(interleave_rows(GgmlType::F16, src.data(), 24, 16, 12, dst.data()), Error);

  const int64_t cols = 32 * 6;
  auto a = make_weights(GgmlType::F16, 80, cols, 31), b = make_weights(GgmlType::Q4_0, 64, cols, 32),
       c = make_weights(GgmlType::BF16, 16, cols, 33);
  auto ai = interleaved(GgmlType::F16, a, 80, cols), bi = interleaved(GgmlType::Q4_0, b, 64, cols);
  const std::vector<WeightView> ws = {ai.view, bi.view, plain_view(GgmlType::BF16, c, 16, cols)};
  for (Isa isa : available_isas()) expect_many_equals_alone(*kernels_for(isa), ws, cols, 34, {2, 3});
}
