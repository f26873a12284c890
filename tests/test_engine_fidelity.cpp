// The engine against independent references on tiny random-weight models of every supported
// architecture (tests/fixtures/engine, made by tools/make_engine_fixtures.py):
//   - transformers' F32 logits at every prompt position and its greedy continuations, for the
//     F32 safetensors folder and for the BF16 copy (whose exact answer transformers computes on
//     the BF16-rounded weights in F32);
//   - llama.cpp's logits and greedy continuations for the F16, Q8_0 and Q4_0 GGUF conversions
//     (on a CPU with the AVX-512 table the Q8_0 and Q4_0 matrices run interleaved,
//     kernels/interleave.h, so these cases check that path end to end);
//   - the same for K-quants on tinyllama_k (TinyLlama widened to hidden 256 so that rows are
//     whole 256-element super-blocks), GGUFs made by llama.cpp's own quantizer: all-Q4_K and
//     the Q4_K_M mixture (Q4_K + Q6_K). On AVX-512 the Q4_K matrices are re-laid interleaved at
//     load; run with BILLION_KERNELS=avx2 and =scalar too for the plain layouts;
//   - determinism across thread counts, and clear errors for an over-long prompt and for a
//     missing or mis-shaped tensor.
//
// Tolerances, relative to max|logit| of the reference (all logits of all positions):
//   kExactRel 1e-4: same weights, same float32 graph; only summation order and libm differ
//     (float32 eps 6e-8, dot products of <= 256 terms, 2 layers: ~1e-6 expected, 100x margin).
//   kLlamaCppF16Rel 5e-3: llama.cpp rounds activations to F16 before F16 matmuls (2^-11
//     relative per element); we multiply in F32. Both use an F16 KV cache.
//   kLlamaCppQ8Rel 4e-2: llama.cpp quantizes activations to Q8_0 (fp16 scale) for Q8_0
//     weights; we use our own int8 scheme (kernels/quant.h BlockQ8A, fp32 scale). Each differs
//     from the exact F32 answer by up to ~3.5% here (llama.cpp Q8_0 vs transformers: 0.28 of
//     8.2 on llama32), and we measured up to 2.6% between the two.
//   kLlamaCppQ4Rel: Q4_0 weights, the same activation quantization as llama.cpp's (ggml's
//     block_q8_0 values) and exact integer block sums in both engines; what differs is the float
//     order of the per-block sums (ours: interleaved or ggml's vec_dot order; llama.cpp: its
//     repacked GEMM where it repacks), which can move an activation across a rounding boundary
//     of the next layer's int8 quantization. Measured with the interleaved kernels: 0 on five
//     fixtures, 1.2e-2 on pythia (GELU + LayerNorm; its Q8_0 case shows the same).
//   kLlamaCppQ4KRel 3e-2 (llama_cpp_q4_k, llama_cpp_q4_k_m: the prompt in one batch, as every
//     other llama_cpp_* reference): both engines quantize activations to ggml's Q8_K and sum
//     exact integers per super-block; what differs is float order. llama.cpp's own arithmetic
//     is not stable at this level: its batched prefill (repacked K-quant GEMM) and its
//     single-token path on the same file differ by 0.170 of 8.83 = 1.93e-2 (q4_k) and 0.167 of
//     8.65 = 1.93e-2 (q4_k_m), max_diff_vs_batched_prefill in expected.json: a float-order
//     difference of ~1e-6 moves an activation across a Q8_K (or F16 KV) rounding boundary at a
//     few positions and that step grows through the layers. An engine as exact as llama.cpp
//     can therefore sit 2e-2 from this reference; the bound is 1.5x llama.cpp's own spread.
//     Measured (every kernel table, scalar / avx2 / avx512 interleaved): 1.93e-2 on both, the
//     same positions and the same greedy near ties as llama.cpp's single-token path.
//   kLlamaCppQ4KTokRel 1e-4 (llama_cpp_q4_k_tok, llama_cpp_q4_k_m_tok: llama.cpp fed the prompt
//     one token per call, its single-token path): same values, same activation quantization,
//     only the float order of a few sums differs (~1e-6 of the logits, as kExactRel); a
//     single flipped rounding would cost ~1e-2 and fail. Measured: 2.7e-7 (q4_k) and 2.2e-7
//     (q4_k_m) with every kernel table; our Q4_K and Q6_K tiles of every table promise the
//     scalar reference's bits (matmul_kquant_avx2.cpp, test_kernels, test_interleave), so the
//     outcome does not depend on the CPU.
//   kBf16VsF32Rel: BF16 weights against the F32 model (weight rounding 2^-9 relative); a stated
//     bound on what BF16 storage costs, not an engine error.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <unistd.h>

#include "engine_fixture.h"
#include "generate/generator.h"

using namespace billion;
using namespace billion::testing;
namespace fs = std::filesystem;

namespace {

constexpr double kExactRel = 1e-4;
constexpr double kLlamaCppF16Rel = 5e-3;
constexpr double kLlamaCppQ8Rel = 4e-2;
constexpr double kLlamaCppQ4Rel = 2e-2;
constexpr double kLlamaCppQ4KRel = 3e-2;
constexpr double kLlamaCppQ4KTokRel = 1e-4;
constexpr double kBf16VsF32Rel = 3e-2;

const std::string kDir = std::string(BILLION_FIXTURES_DIR) + "/engine/";

struct Case {
  std::string fixture;
  std::string reference;  // key of expected.json "references"
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) { return info.param.fixture + "_" + info.param.reference; }
void PrintTo(const Case& c, std::ostream* os) { *os << c.fixture << "/" << c.reference; }

// Every fixture and the references it must have (llama.cpp loads all three families).
std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const char* f : {"llama32", "tinyllama", "pythia", "stablelm", "stablelm_qkln", "stablelm_par"}) {
    bool variant = std::string(f).find('_') != std::string::npos;  // StableLM switches: no BF16 copy
    for (const char* r : {"hf_f32", "hf_bf16", "llama_cpp_f16", "llama_cpp_q8_0", "llama_cpp_q4_0"})
      if (!(variant && std::string(r) == "hf_bf16")) cases.push_back({f, r});
  }
  // K-quants need rows of a multiple of 256: a wider TinyLlama (hidden 256) whose GGUFs were made
  // by llama.cpp's own quantizer, all-Q4_K and the Q4_K_M mixture (Q4_K + Q6_K); "_tok" is
  // llama.cpp fed one token per call. No hf_f32 case: its F32 weights are not committed.
  for (const char* r : {"llama_cpp_q4_k", "llama_cpp_q4_k_m", "llama_cpp_q4_k_tok", "llama_cpp_q4_k_m_tok"})
    cases.push_back({"tinyllama_k", r});
  return cases;
}

struct Reference {
  nlohmann::json expected;
  nlohmann::json ref;
  std::string model_path;
  KVType kv;
  double tolerance;
  std::vector<float> logits;  // [sum of prompt lengths, vocab]
};

Reference load_reference(const Case& c) {
  Reference r;
  r.expected = read_json(kDir + c.fixture + "/expected.json");
  if (!r.expected["references"].contains(c.reference)) throw Error(c.fixture + ": no reference " + c.reference);
  r.ref = r.expected["references"][c.reference];
  r.model_path = kDir + c.fixture + "/" + r.ref["model"].get<std::string>();
  bool llama_cpp = c.reference.rfind("llama_cpp", 0) == 0;
  r.kv = llama_cpp ? KVType::F16 : KVType::F32;
  r.tolerance = c.reference == "llama_cpp_f16"    ? kLlamaCppF16Rel
                : c.reference == "llama_cpp_q8_0" ? kLlamaCppQ8Rel
                : c.reference == "llama_cpp_q4_0" ? kLlamaCppQ4Rel
                : c.reference == "llama_cpp_q4_k" || c.reference == "llama_cpp_q4_k_m" ? kLlamaCppQ4KRel
                : c.reference == "llama_cpp_q4_k_tok" || c.reference == "llama_cpp_q4_k_m_tok" ? kLlamaCppQ4KTokRel
                                                  : kExactRel;
  r.logits = read_gz_floats(kDir + c.fixture + "/" + r.ref["logits"].get<std::string>());
  return r;
}

class EngineFidelity : public ::testing::TestWithParam<Case> {};

TEST_P(EngineFidelity, LogitsAtEveryPosition) {
  const Case& c = GetParam();
  Reference r = load_reference(c);
  auto model = Model::load(r.model_path);
  const int vocab = r.expected["vocab"].get<int>();
  ASSERT_EQ(model->spec().vocab_size, vocab);
  ThreadPool pool(2);
  size_t offset = 0;
  Diff total;
  for (const auto& p : r.expected["prompts"]) {
    std::vector<int32_t> prompt = p.get<std::vector<int32_t>>();
    auto ours = all_logits(*model, prompt, r.kv, pool);
    ASSERT_EQ(ours.size(), prompt.size() * vocab);
    ASSERT_LE(offset + ours.size(), r.logits.size());
    Diff d = compare(ours.data(), r.logits.data() + offset, ours.size());
    total.max_abs = std::max(total.max_abs, d.max_abs);
    total.ref_max_abs = std::max(total.ref_max_abs, d.ref_max_abs);
    offset += ours.size();
  }
  EXPECT_EQ(offset, r.logits.size()) << "the reference holds more positions than the prompts";
  ASSERT_GT(total.ref_max_abs, 1.0) << "reference logits too small to test anything";
  std::printf("[fidelity] %-14s %-15s max|diff| %.3g  max|logit| %.3g  relative %.3g (bound %.0e)\n", c.fixture.c_str(),
              c.reference.c_str(), total.max_abs, total.ref_max_abs, total.relative(), r.tolerance);
  EXPECT_LE(total.relative(), r.tolerance);
}

// Greedy continuations. Against transformers (same arithmetic up to ~1e-6): identical. Against
// llama.cpp, whose logits differ from ours by up to the stated bound ε = tolerance × max|logit|,
// a step where two candidates are closer than 2ε has no determined greedy answer: the
// continuations must be identical up to the first difference, and there our top choice may
// beat llama.cpp's by at most 2ε in our logits (a near tie, printed); after it they are
// different texts and are not compared.
TEST_P(EngineFidelity, GreedyContinuation) {
  const Case& c = GetParam();
  Reference r = load_reference(c);
  auto model = Model::load(r.model_path);
  ThreadPool pool(2);
  GenerationOptions options;
  options.max_new_tokens = r.expected["new_tokens"].get<int>();
  options.stop_at_eos = false;
  const bool llama_cpp = r.kv == KVType::F16;
  const double max_logit = r.ref["max_abs_logit"].get<double>();
  const auto& prompts = r.expected["prompts"];
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int32_t> prompt = prompts[i].get<std::vector<int32_t>>();
    std::vector<int32_t> want = r.ref["greedy"][i].get<std::vector<int32_t>>();
    KVCache cache = model->decoder().make_cache(0, r.kv);
    std::vector<int32_t> cached;
    auto result = generate(*model, cache, cached, prompt, options, pool);
    ASSERT_EQ(result.tokens.size(), want.size());
    size_t same = common_prefix(result.tokens, want);
    if (same == want.size()) {
      std::printf("[greedy] %-14s %-15s prompt %zu: %zu/%zu tokens match\n", c.fixture.c_str(), c.reference.c_str(), i, same, want.size());
      continue;
    }
    if (!llama_cpp) {
      ADD_FAILURE() << "prompt " << i << " first differs at generated token " << same;
      continue;
    }
    // Our logits at the step of the first difference.
    std::vector<int32_t> context = prompt;
    context.insert(context.end(), want.begin(), want.begin() + same);
    auto logits = all_logits(*model, context, r.kv, pool);
    const float* last = logits.data() + (context.size() - 1) * model->spec().vocab_size;
    double gap = double(last[result.tokens[same]]) - double(last[want[same]]);
    double allowed = 2 * r.tolerance * max_logit;
    std::printf("[greedy] %-14s %-15s prompt %zu: %zu/%zu tokens match, then a near tie: our logit gap %.3g (2ε = %.3g)\n",
                c.fixture.c_str(), c.reference.c_str(), i, same, want.size(), gap, allowed);
    EXPECT_LE(gap, allowed) << "prompt " << i << ": at generated token " << same << " we pick " << result.tokens[same]
                            << ", llama.cpp " << want[same] << ", and that is not a near tie";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineFidelity, ::testing::ValuesIn(all_cases()), case_name);

// BF16 storage against the F32 model: the cost of the weight rounding, within a stated bound.
TEST(EngineFidelityBf16, Bf16WeightsAgainstF32Model) {
  for (const char* f : {"llama32", "tinyllama", "pythia", "stablelm"}) {
    auto expected = read_json(kDir + f + "/expected.json");
    auto ref = read_gz_floats(kDir + f + "/hf_f32.logits.gz");
    auto model = Model::load(kDir + f + "/bf16");
    ThreadPool pool(1);
    size_t offset = 0;
    Diff total;
    for (const auto& p : expected["prompts"]) {
      auto ours = all_logits(*model, p.get<std::vector<int32_t>>(), KVType::F32, pool);
      Diff d = compare(ours.data(), ref.data() + offset, ours.size());
      total.max_abs = std::max(total.max_abs, d.max_abs);
      total.ref_max_abs = std::max(total.ref_max_abs, d.ref_max_abs);
      offset += ours.size();
    }
    std::printf("[bf16 vs f32] %-10s relative %.3g (bound %.0e)\n", f, total.relative(), kBf16VsF32Rel);
    EXPECT_LE(total.relative(), kBf16VsF32Rel) << f;
  }
}

// The thread count changes how rows are split, never the arithmetic of one output.
TEST(EngineDeterminism, OneAndTwoThreadsGiveIdenticalLogits) {
  for (const char* rel : {"llama32/f32", "pythia/f32", "llama32/llama32.q8_0.gguf", "stablelm_qkln/stablelm_qkln.f16.gguf"}) {
    const std::string path = kDir + rel;
    auto model = Model::load(path);
    auto expected = read_json(kDir + std::string(rel).substr(0, std::string(rel).find('/')) + "/expected.json");
    std::vector<int32_t> prompt = expected["prompts"][2].get<std::vector<int32_t>>();
    for (KVType kv : {KVType::F32, KVType::F16}) {
      ThreadPool one(1), two(2);
      auto a = all_logits(*model, prompt, kv, one);
      auto b = all_logits(*model, prompt, kv, two);
      ASSERT_EQ(a.size(), b.size());
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << path;
    }
  }
}

TEST(EngineErrors, PromptLongerThanContextIsAnError) {
  auto model = Model::load(kDir + "llama32/f32");
  const int ctx = model->spec().context_length;
  ASSERT_EQ(ctx, 128);
  std::vector<int32_t> prompt(ctx + 1, 7);
  ThreadPool pool(1);
  KVCache cache = model->decoder().make_cache(0, KVType::F32);
  EXPECT_EQ(cache.capacity(), ctx);
  std::vector<float> logits;
  try {
    model->decoder().forward(prompt, cache, logits, LogitsFor::Last, pool);
    ADD_FAILURE() << "forward accepted a prompt longer than the context";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context"), std::string::npos) << e.what();
  }
  std::vector<int32_t> cached;
  GenerationOptions options;
  try {
    generate(*model, cache, cached, prompt, options, pool);
    ADD_FAILURE() << "generate accepted a prompt longer than the context";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context"), std::string::npos) << e.what();
  }
}

// Copies a model folder to a temporary one, rewriting the safetensors header with `edit`
// (renaming or reshaping an entry; byte offsets stay valid because sizes are kept).
std::string edited_copy(const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
  fs::path src = kDir + "llama32/f32";
  fs::path dst = fs::temp_directory_path() / ("billion_fidelity_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dst);
  fs::create_directories(dst);
  for (const char* f : {"config.json", "tokenizer.json"}) fs::copy_file(src / f, dst / f);
  std::ifstream in(src / "model.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  auto header = nlohmann::json::parse(bytes.substr(8, header_len));
  edit(header);
  std::string h = header.dump();
  h.resize((h.size() + 7) / 8 * 8, ' ');
  uint64_t n = h.size();
  std::ofstream out(dst / "model.safetensors", std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << h << bytes.substr(8 + header_len);
  return dst.string();
}

TEST(EngineErrors, MissingTensorIsNamed) {
  const std::string name = "model.layers.1.mlp.up_proj.weight";
  auto dir = edited_copy("missing", [&](nlohmann::json& h) {
    h[name + ".renamed"] = h[name];
    h.erase(name);
  });
  try {
    Model::load(dir);
    ADD_FAILURE() << "a model without " << name << " loaded";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}

TEST(EngineErrors, MisShapedTensorIsNamed) {
  const std::string name = "model.layers.0.self_attn.k_proj.weight";  // [32, 64] → [64, 32]
  auto dir = edited_copy("shape", [&](nlohmann::json& h) { h[name]["shape"] = {64, 32}; });
  try {
    Model::load(dir);
    ADD_FAILURE() << "a model with a mis-shaped " << name << " loaded";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find("[64, 32]"), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}

}  // namespace
