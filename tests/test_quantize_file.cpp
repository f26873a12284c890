// `billion quantize` (model/quantize_file): Hugging Face folder → GGUF must reproduce, tensor for
// tensor and byte for byte, the F16 and Q8_0 GGUF files that tools/make_engine_fixtures.py
// wrote with gguf-py following llama.cpp's converter (q/k permutation, rope_freqs, fused QKV
// order, stacked q/k norms), which llama.cpp loads and matches transformers with. GGUF → GGUF
// re-quantization must load and stay within the quantization bound of the source's logits.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include "engine_fixture.h"
#include "formats/gguf.h"
#include "kernels/quant.h"
#include "model/quantize_file.h"

using namespace billion;
using namespace billion::testing;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(BILLION_FIXTURES_DIR) + "/engine/";

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("billion_quantize_" + std::to_string(::getpid()) + "_" + name)).string();
}

QuantizeFileOptions options_for(GgmlType type) {
  QuantizeFileOptions o;
  o.type = type;
  o.threads = 2;
  return o;
}

class HfToGguf : public ::testing::TestWithParam<std::string> {};

TEST_P(HfToGguf, SameTensorsAsTheReferenceConverter) {
  const std::string fixture = GetParam();
  const std::pair<GgmlType, const char*> types[] = {{GgmlType::F16, "f16"}, {GgmlType::Q8_0, "q8_0"}};
  for (auto [type, suffix] : types) {
    const std::string out = temp_path(fixture + "." + suffix + ".gguf");
    auto report = quantize_model_file(kDir + fixture + "/f32", out, options_for(type));
    EXPECT_EQ(report.input_format, "safetensors");
    GgufFile ours(out), ref(kDir + fixture + "/" + fixture + "." + suffix + ".gguf");
    ASSERT_EQ(ours.tensors().size(), ref.tensors().size()) << suffix;
    for (const auto& t : ref.tensors()) {
      const auto* o = ours.find_tensor(t.name);
      ASSERT_NE(o, nullptr) << t.name;
      EXPECT_EQ(o->dims, t.dims) << t.name;
      EXPECT_EQ(o->type, t.type) << t.name;
      ASSERT_EQ(o->n_bytes, t.n_bytes) << t.name;
      EXPECT_EQ(std::memcmp(o->data, t.data, t.n_bytes), 0) << t.name << " (" << suffix << ") differs";
    }
    for (const char* key : {"general.architecture"}) EXPECT_EQ(ours.get_string(key), ref.get_string(key));
    // And it runs: the same logits as the reference converter's file, bit for bit.
    auto expected = read_json(kDir + fixture + "/expected.json");
    auto prompt = expected["prompts"][1].get<std::vector<int32_t>>();
    ThreadPool pool(1);
    auto a = all_logits(*Model::load(out), prompt, KVType::F16, pool);
    auto b = all_logits(*Model::load(kDir + fixture + "/" + fixture + "." + suffix + ".gguf"), prompt, KVType::F16, pool);
    EXPECT_EQ(a, b) << suffix;
    fs::remove(out);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfToGguf, ::testing::Values("llama32", "tinyllama", "pythia", "stablelm", "stablelm_qkln", "stablelm_par"));

// GGUF → GGUF: F16 source re-quantized to each type. Every matrix must hold exactly
// quantize_row(dequantize_row(source)); the model must load and its logits stay within the
// type's bound of the F16 file's, relative to max|logit|. The bounds are loose because these
// random 2-layer models amplify weight error (measured: Q8_0 3.6%, Q4_0 46%, Q4_1 32%); the
// byte checks above and here are what pin the file down.
TEST(GgufToGguf, RequantizedModelStaysWithinTheQuantizationBound) {
  auto expected = read_json(kDir + "llama32/expected.json");
  auto prompt = expected["prompts"][2].get<std::vector<int32_t>>();
  ThreadPool pool(2);
  const std::string src = kDir + "llama32/llama32.f16.gguf";
  auto ref = all_logits(*Model::load(src), prompt, KVType::F32, pool);
  const std::pair<GgmlType, double> cases[] = {{GgmlType::Q8_0, 0.06}, {GgmlType::Q4_0, 0.6}, {GgmlType::Q4_1, 0.5}, {GgmlType::F16, 1e-6}};
  for (auto [type, bound] : cases) {
    const std::string out = temp_path(std::string("requant.") + ggml_type_name(type) + ".gguf");
    auto report = quantize_model_file(src, out, options_for(type));
    EXPECT_EQ(report.input_format, "gguf");
    GgufFile g(out);
    EXPECT_EQ(g.find_tensor("blk.0.attn_q.weight")->type, type);
    EXPECT_EQ(g.find_tensor("blk.0.attn_norm.weight")->type, GgmlType::F32);  // norms stay F32
    EXPECT_EQ(g.find_tensor("rope_freqs.weight")->type, GgmlType::F32);
    GgufFile source(src);
    for (const char* name : {"token_embd.weight", "blk.1.ffn_down.weight"}) {
      const auto* s = source.find_tensor(name);
      const auto* t = g.find_tensor(name);
      const int64_t cols = static_cast<int64_t>(s->dims[0]), rows = static_cast<int64_t>(s->dims[1]);
      std::vector<float> row(cols);
      std::vector<uint8_t> want(kernels::type_row_bytes(type, cols));
      for (int64_t r = 0; r < rows; ++r) {
        kernels::dequantize_row(s->type, s->data + r * kernels::type_row_bytes(s->type, cols), row.data(), cols);
        kernels::quantize_row(type, row.data(), want.data(), cols);
        ASSERT_EQ(std::memcmp(t->data + r * want.size(), want.data(), want.size()), 0) << name << " row " << r;
      }
    }
    auto ours = all_logits(*Model::load(out), prompt, KVType::F32, pool);
    Diff d = compare(ours.data(), ref.data(), ref.size());
    std::printf("[requantize] f16 -> %-5s relative logit error %.3g (bound %.2g)\n", ggml_type_name(type), d.relative(), bound);
    EXPECT_LE(d.relative(), bound) << ggml_type_name(type);
    fs::remove(out);
  }
}

TEST(QuantizeErrors, BadTypeAndInputsAreClearErrors) {
  EXPECT_THROW(parse_quantize_type("q3_k"), Error);
  EXPECT_EQ(parse_quantize_type("Q4_1"), GgmlType::Q4_1);
  try {
    quantize_model_file(kDir + "does-not-exist", temp_path("x.gguf"), options_for(GgmlType::Q8_0));
    ADD_FAILURE() << "a missing input was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does-not-exist"), std::string::npos) << e.what();
  }
  // A folder whose tokenizer is not byte-level BPE cannot get a GGUF tokenizer: named error.
  const std::string dir = temp_path("spm_folder");
  fs::create_directories(dir);
  fs::copy_file(kDir + "tinyllama/f32/config.json", dir + "/config.json");
  fs::copy_file(kDir + "tinyllama/f32/model.safetensors", dir + "/model.safetensors");
  { std::ofstream(dir + "/tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {}, "merges": [], "byte_fallback": true}, "pre_tokenizer": {"type": "Metaspace"}})"; }
  try {
    quantize_model_file(dir, temp_path("spm.gguf"), options_for(GgmlType::Q8_0));
    ADD_FAILURE() << "a SentencePiece-style tokenizer was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte-level BPE"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
