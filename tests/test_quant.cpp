// Weight block formats: our dequantize_row / quantize_row against gguf-py (fixtures made by
// tools/make_quant_fixtures.py), round-trip error bounds per format, and the activation
// quantizers of every ISA against the scalar reference and against ggml's own values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"

using namespace billion;
using namespace billion::kernels;

namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<float> read_floats(const std::string& path) {
  auto bytes = read_bytes(path);
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

GgmlType type_from_name(const std::string& name) {
  for (uint32_t id = 0; id < 40; ++id)
    if (auto t = ggml_type_traits(id); t && name == t->name) return t->type;
  ADD_FAILURE() << "unknown type " << name;
  return GgmlType::F32;
}

uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

const char* kFixtureTypes[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1",
                               "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"};
// The types both gguf-py and we can quantize (neither has a K-quant quantizer): the byte
// comparison is instantiated for these only.
const char* kQuantizeTypes[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"};

}  // namespace

class QuantFixture : public ::testing::TestWithParam<const char*> {};

// gguf-py's dequantization of its own bytes equals ours bit for bit (NaN compared by bits).
TEST_P(QuantFixture, DequantizeMatchesGgufPy) {
  const std::string base = std::string(BILLION_FIXTURES_DIR) + "/quant/" + GetParam();
  auto meta = nlohmann::json::parse(read_bytes(base + ".json"));
  const GgmlType type = type_from_name(meta["type"]);
  const int64_t rows = meta["rows"], cols = meta["cols"];
  auto q = read_bytes(base + ".q");
  auto expected = read_floats(base + ".deq.f32");
  const size_t rb = type_row_bytes(type, cols);
  ASSERT_EQ(q.size(), rb * rows);
  ASSERT_EQ(expected.size(), static_cast<size_t>(rows * cols));
  std::vector<float> got(cols);
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(type, q.data() + r * rb, got.data(), cols);
    for (int64_t i = 0; i < cols; ++i)
      ASSERT_EQ(bits(got[i]), bits(expected[r * cols + i])) << "row " << r << " col " << i << ": " << got[i] << " vs " << expected[r * cols + i];
  }
}

// Our quantizers write the bytes gguf-py (= ggml's reference quantizers) writes.
class QuantizeFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(QuantizeFixture, QuantizeMatchesGgufPy) {
  const std::string base = std::string(BILLION_FIXTURES_DIR) + "/quant/" + GetParam();
  auto meta = nlohmann::json::parse(read_bytes(base + ".json"));
  ASSERT_TRUE(meta["quantize"].get<bool>()) << "the fixture has no quantized bytes for " << GetParam();
  const GgmlType type = type_from_name(meta["type"]);
  const int64_t rows = meta["rows"], cols = meta["cols"];
  auto src = read_floats(base + ".src.f32");
  auto expected = read_bytes(base + ".q");
  const size_t rb = type_row_bytes(type, cols);
  std::vector<uint8_t> got(rb);
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(type, src.data() + r * cols, got.data(), cols);
    for (size_t i = 0; i < rb; ++i)
      ASSERT_EQ(got[i], expected[r * rb + i]) << GetParam() << " row " << r << " byte " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, QuantFixture, ::testing::ValuesIn(kFixtureTypes));
INSTANTIATE_TEST_SUITE_P(Types, QuantizeFixture, ::testing::ValuesIn(kQuantizeTypes));

// Round trip x → quantize → dequantize stays within each format's bound, per block:
//   Q8_0: step d = amax/127, error ≤ d/2 plus the fp16 rounding of d (relative 2^-11) times
//         |q| ≤ 127: bound d·(1/2 + 127·2^-11).
//   Q4_0 / Q5_0: d = amax/8 (/16) with the extreme mapped exactly; the opposite extreme can be
//         clipped by one step: bound |d|·(1 + 16·2^-11).
//   Q4_1 / Q5_1: d = (max-min)/15 (/31), error ≤ d/2 plus fp16 rounding of d (times ≤ 31) and
//         of m: bound d·(1/2 + 31·2^-11) + |min|·2^-11.
// Also reports the relative RMS error on Gaussian rows (the number docs/QUANTIZATION.md cites).
TEST(Quant, RoundTripErrorBounds) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 32 * 256;
  std::vector<float> x(n), y(n);
  for (auto& v : x) v = normal(rng);
  const double u16 = std::ldexp(1.0, -11);
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1}) {
    std::vector<uint8_t> q(type_row_bytes(type, n));
    quantize_row(type, x.data(), q.data(), n);
    dequantize_row(type, q.data(), y.data(), n);
    double err2 = 0.0, sig2 = 0.0;
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0, mn = x[b * 32], mx = x[b * 32];
      for (int j = 0; j < 32; ++j) {
        amax = std::max(amax, std::fabs(x[b * 32 + j]));
        mn = std::min(mn, x[b * 32 + j]);
        mx = std::max(mx, x[b * 32 + j]);
      }
      double bound = 0;
      switch (type) {
        case GgmlType::Q8_0: bound = amax / 127.0 * (0.5 + 127 * u16); break;
        case GgmlType::Q4_0: bound = amax / 8.0 * (1 + 16 * u16); break;
        case GgmlType::Q5_0: bound = amax / 16.0 * (1 + 16 * u16); break;
        case GgmlType::Q4_1: bound = (mx - mn) / 15.0 * (0.5 + 31 * u16) + std::fabs(mn) * u16; break;
        case GgmlType::Q5_1: bound = (mx - mn) / 31.0 * (0.5 + 31 * u16) + std::fabs(mn) * u16; break;
        default: break;
      }
      for (int j = 0; j < 32; ++j) {
        const double e = std::fabs(static_cast<double>(y[b * 32 + j]) - x[b * 32 + j]);
        ASSERT_LE(e, bound) << ggml_type_name(type) << " block " << b << " elem " << j;
        err2 += e * e;
        sig2 += static_cast<double>(x[b * 32 + j]) * x[b * 32 + j];
      }
    }
    std::printf("[measured] %s relative RMS round-trip error on N(0,1): %.5f\n", ggml_type_name(type), std::sqrt(err2 / sig2));
  }
}

// Every ISA's activation quantizers write the same bytes as the reference (so the integer parts
// of the dot products agree exactly across ISAs).
TEST(Quant, ActivationQuantizersMatchReference) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const int64_t n = 256 * 5;
  std::vector<float> x(n);
  for (auto& v : x) v = normal(rng);
  // Q8K: the signed maximum is the first element of the largest magnitude (-19 here, then +19),
  // a block of zeros, one whose maximum is negative and reached twice.
  x[280] = -19.0f;
  x[300] = 19.0f;
  for (int j = 0; j < 256; ++j) x[512 + j] = 0.0f;
  x[801] = -18.5f;
  x[900] = -18.5f;
  for (int j = 0; j < 32; ++j) x[64 + j] = 0.0f;                   // an all-zero block
  for (int j = 0; j < 32; ++j) x[96 + j] = (j - 16) + 0.5f;        // ties after scaling by 127/amax? not exact, still fine
  x[128] = 127.0f;
  for (int j = 1; j < 32; ++j) x[128 + j] = j - 15.5f;             // exact ties: scale 1
  const KernelTable& ref = scalar_kernel_table();
  for (Isa isa : available_isas()) {
    const KernelTable* k = kernels_for(isa);
    std::vector<uint8_t> a(n / 32 * sizeof(BlockQ8A)), b(a.size());
    ref.quantize_q8a(x.data(), a.data(), n);
    k->quantize_q8a(x.data(), b.data(), n);
    EXPECT_EQ(a, b) << isa_name(isa) << " q8a";
    std::vector<uint8_t> c(n / 256 * sizeof(BlockQ8K)), d(c.size());
    ref.quantize_q8k(x.data(), c.data(), n);
    k->quantize_q8k(x.data(), d.data(), n);
    EXPECT_EQ(c, d) << isa_name(isa) << " q8k";
  }
  // The reference's own contract: |q| ≤ 127 and |q·d - x| ≤ d/2.
  std::vector<BlockQ8A> blocks(n / 32);
  quantize_row_q8a_ref(x.data(), blocks.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      ASSERT_LE(std::abs(blocks[b].qs[j]), 127);
      // d is fp16-rounded (relative error <= 2^-11), so 127 steps can drift by 127·2^-11·d more.
      ASSERT_LE(std::fabs(blocks[b].qs[j] * blocks[b].d - x[b * 32 + j]), blocks[b].d * 0.5625f + 1e-30f);
      sum += blocks[b].qs[j];
    }
    // d and s are fp16 values (ggml's block_q8_1): exactly representable after a round trip.
    ASSERT_EQ(f16_to_f32(f32_to_f16(blocks[b].d)), blocks[b].d);
    ASSERT_EQ(f16_to_f32(f32_to_f16(blocks[b].s)), blocks[b].s);
    ASSERT_NEAR(blocks[b].s, blocks[b].d * sum, std::fabs(blocks[b].d * sum) * 2e-3f + 1e-30f);
  }
}

TEST(Quant, SizesAndErrors) {
  EXPECT_EQ(type_row_bytes(GgmlType::Q4_0, 2048), 2048u / 32 * 18);
  EXPECT_EQ(type_row_bytes(GgmlType::Q6_K, 512), 2u * 210);
  EXPECT_EQ(type_row_bytes(GgmlType::F16, 7), 14u);
  EXPECT_FALSE(weight_type_supported(GgmlType::IQ2_XXS));
  std::vector<float> x(40);
  std::vector<uint8_t> q(64);
  EXPECT_THROW(quantize_row(GgmlType::Q4_0, x.data(), q.data(), 40), Error);
  EXPECT_THROW(quantize_row(GgmlType::Q4_K, x.data(), q.data(), 256), Error);
}

// ggml's own values (tests/fixtures/kernels/ggml_activations.json, made by
// tools/make_ggml_activation_fixtures.py from llama-cpp-python's libggml-cpu): our activation
// quantizers must give ggml's q8_0/q8_1/q8_K bytes on every ISA, and the 32-element dot
// products must give ggml's AVX2 vec_dot bit for bit on the AVX2 table (same lanes, same
// products), within float rounding of it on the reference and for K-quants.
namespace {
std::vector<uint8_t> from_hex(const std::string& h) {
  std::vector<uint8_t> out(h.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(std::stoi(h.substr(2 * i, 2), nullptr, 16));
  return out;
}
}  // namespace

TEST(Quant, ActivationsAndDotsMatchGgml) {
  std::ifstream in(std::string(BILLION_FIXTURES_DIR) + "/kernels/ggml_activations.json");
  ASSERT_TRUE(in.good()) << "missing fixture; run tools/make_ggml_activation_fixtures.py";
  const nlohmann::json j = nlohmann::json::parse(in);
  const int64_t cols = j["cols"], n_act = j["n_act"], n_w = j["n_w"];
  const auto xb = from_hex(j["x"]);
  std::vector<float> x(n_act * cols);
  ASSERT_EQ(xb.size(), x.size() * 4);
  std::memcpy(x.data(), xb.data(), xb.size());
  const auto q80 = from_hex(j["act"]["q8_0"]), q81 = from_hex(j["act"]["q8_1"]), q8k = from_hex(j["act"]["q8_K"]);
  const int64_t nb = n_act * cols / 32;
  ASSERT_EQ(q80.size(), size_t(nb * 34));
  ThreadPool pool(1);
  for (Isa isa : available_isas()) {
    const KernelTable& k = *kernels_for(isa);
    std::vector<BlockQ8A> a(nb);
    k.quantize_q8a(x.data(), a.data(), n_act * cols);
    for (int64_t b = 0; b < nb; ++b) {
      uint16_t d0, d1, s1;
      std::memcpy(&d0, &q80[b * 34], 2);
      std::memcpy(&d1, &q81[b * 36], 2);
      std::memcpy(&s1, &q81[b * 36 + 2], 2);
      ASSERT_EQ(a[b].d, f16_to_f32(d0)) << isa_name(isa) << " block " << b << " d (q8_0)";
      ASSERT_EQ(a[b].d, f16_to_f32(d1)) << isa_name(isa) << " block " << b << " d (q8_1)";
      ASSERT_EQ(a[b].s, f16_to_f32(s1)) << isa_name(isa) << " block " << b << " s (q8_1)";
      ASSERT_EQ(std::memcmp(a[b].qs, &q80[b * 34 + 2], 32), 0) << isa_name(isa) << " block " << b << " qs (q8_0)";
      ASSERT_EQ(std::memcmp(a[b].qs, &q81[b * 36 + 4], 32), 0) << isa_name(isa) << " block " << b << " qs (q8_1)";
    }
    std::vector<uint8_t> ak(n_act * cols / 256 * sizeof(BlockQ8K));
    k.quantize_q8k(x.data(), ak.data(), n_act * cols);
    EXPECT_EQ(ak, q8k) << isa_name(isa) << " q8_K";

    for (const auto& [name, t] : j["types"].items()) {
      const GgmlType type = type_from_name(name);
      const auto wq = from_hex(t["weights"]), yb = from_hex(t["y"]);
      std::vector<float> want(n_act * n_w), got(n_act * n_w);
      std::memcpy(want.data(), yb.data(), yb.size());
      const WeightView w{type, wq.data(), n_w, cols, type_row_bytes(type, cols)};
      matmul(k, w, x.data(), got.data(), n_act, pool);
      const bool exact = (isa == Isa::Avx2 || isa == Isa::Avx512) && type_block_elements(type) == 32;
      for (int64_t i = 0; i < n_act * n_w; ++i) {
        if (exact) {
          EXPECT_EQ(got[i], want[i]) << isa_name(isa) << " " << name << " output " << i;
        } else {  // same integers, float sums in another order: a few ulps of the magnitude
          double mag = 0;
          for (int64_t c = 0; c < cols; ++c) mag += std::fabs(x[i / n_w * cols + c]) * 4;
          EXPECT_NEAR(got[i], want[i], 1e-6 * mag + 1e-6) << isa_name(isa) << " " << name << " output " << i;
        }
      }
    }
  }
}
