// Evaluating a sequence in one prefill, token by token, or in chunks (a chat's turns, a reused
// prompt prefix) must leave the same logits, so that a conversation kept in the KV cache answers
// as `generate` does from scratch. With an F32 cache and with a batch-invariant F16 cache the
// three are bit-identical. A default F16 cache sums attention as llama.cpp does (kernels.h,
// AttentionOrder): a batch in one order, a single-token step in another, so chunks of two or
// more tokens are bit-identical to the prefill and single-token steps agree only up to rounding
// (amplified by int8 activations on quantized weights).
// Tiny Llama-3.2-shaped GGUF models from tests/fixtures/engine/llama32 (F16 and Q8_0 weights).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine_fixture.h"

using namespace billion;
using namespace billion::testing;

namespace {

const std::string kDir = std::string(BILLION_FIXTURES_DIR) + "/engine/llama32/";

// The prompts of the fixture, joined into one sequence of 37 tokens.
std::vector<int32_t> sequence() {
  std::vector<int32_t> seq;
  const auto expected = read_json(kDir + "expected.json");
  for (const auto& p : expected["prompts"]) {
    auto ids = p.get<std::vector<int32_t>>();
    seq.insert(seq.end(), ids.begin(), ids.end());
  }
  return seq;
}

// Logits [n, vocab] of every position, evaluating the sequence in chunks of the given sizes
// (cycled until the sequence ends).
std::vector<float> logits_in_chunks(Model& m, const std::vector<int32_t>& seq, KVType kv, bool invariant,
                                    const std::vector<int>& chunks, ThreadPool& pool) {
  KVCache cache = m.decoder().make_cache(static_cast<int>(seq.size()), kv);
  cache.set_batch_invariant(invariant);
  std::vector<float> all, logits;
  size_t pos = 0;
  for (size_t c = 0; pos < seq.size(); ++c) {
    const size_t len = std::min<size_t>(chunks[c % chunks.size()], seq.size() - pos);
    std::vector<int32_t> part(seq.begin() + pos, seq.begin() + pos + len);
    m.decoder().forward(part, cache, logits, LogitsFor::All, pool);
    all.insert(all.end(), logits.begin(), logits.end());
    pos += len;
  }
  EXPECT_EQ(cache.size(), static_cast<int>(seq.size()));
  return all;
}

bool bit_identical(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

const std::vector<int> kPrefill = {1 << 20}, kOneByOne = {1}, kChunks = {5, 2, 9, 3};

class KvConsistency : public ::testing::TestWithParam<std::string> {};

TEST_P(KvConsistency, BatchInvariantF16AndF32CachesGiveTheSameBitsForEverySplit) {
  auto model = Model::load(kDir + GetParam());
  ThreadPool pool(2);
  const auto seq = sequence();
  ASSERT_EQ(seq.size(), 37u);
  for (KVType kv : {KVType::F16, KVType::F32}) {
    auto prefill = logits_in_chunks(*model, seq, kv, true, kPrefill, pool);
    ASSERT_EQ(prefill.size(), seq.size() * static_cast<size_t>(model->spec().vocab_size));
    EXPECT_TRUE(bit_identical(prefill, logits_in_chunks(*model, seq, kv, true, kOneByOne, pool))) << "token by token";
    EXPECT_TRUE(bit_identical(prefill, logits_in_chunks(*model, seq, kv, true, kChunks, pool))) << "chunks";
    // Chunks that include single tokens (1 is in the cycle) too.
    EXPECT_TRUE(bit_identical(prefill, logits_in_chunks(*model, seq, kv, true, {3, 1, 4, 1}, pool))) << "mixed";
  }
}

TEST_P(KvConsistency, DefaultF16CacheAgreesAcrossSplits) {
  auto model = Model::load(kDir + GetParam());
  ThreadPool pool(2);
  const auto seq = sequence();
  ASSERT_EQ(seq.size(), 37u);
  auto prefill = logits_in_chunks(*model, seq, KVType::F16, false, kPrefill, pool);
  ASSERT_EQ(prefill.size(), seq.size() * static_cast<size_t>(model->spec().vocab_size));
  // Chunks of two or more tokens use the batch order throughout: the same bits.
  EXPECT_TRUE(bit_identical(prefill, logits_in_chunks(*model, seq, KVType::F16, false, kChunks, pool)));
  // Single-token steps add in another order (as llama.cpp's do): the same values up to rounding,
  // which the f16 rounding of q and of the probabilities and, with quantized weights, the int8
  // rounding of activations amplify. Measured on logits up to ~8: max |diff| 1.3e-4 with F16
  // weights, 0.14 with Q8_0 (a few int8 roundings flip). This is why a conversation that must
  // match a from-scratch prefill exactly uses a batch-invariant cache.
  const double bound = GetParam().find("q8_0") != std::string::npos ? 0.5 : 5e-4;
  auto steps = logits_in_chunks(*model, seq, KVType::F16, false, kOneByOne, pool);
  Diff d = compare(steps.data(), prefill.data(), prefill.size());
  std::printf("[kv consistency %s] default F16 cache, token by token vs prefill: max|diff| %.3g (max|logit| %.3g)\n",
              GetParam().c_str(), d.max_abs, d.ref_max_abs);
  EXPECT_GT(d.ref_max_abs, 0.0) << "no logits";
  EXPECT_LE(d.max_abs, bound);
}

// An input longer than the decoder's micro-batch runs in micro-batches (bounded scratch memory).
// With a micro-batch of 8, the 37 tokens run as 8+8+8+8+5 and the first 33 as 8+8+8+7+2 (a
// one-token tail would sum in the single-step order). The logits must be those of one pass, and
// LogitsFor::Last must return the last row of LogitsFor::All.
TEST_P(KvConsistency, LongInputsRunInMicroBatchesWithTheSameBits) {
  auto model = Model::load(kDir + GetParam());
  ThreadPool pool(2);
  const size_t vocab = model->spec().vocab_size;
  for (size_t len : {37, 33}) {
    auto seq = sequence();
    seq.resize(len);
    auto whole = logits_in_chunks(*model, seq, KVType::F16, false, kPrefill, pool);
    ASSERT_EQ(whole.size(), seq.size() * vocab);
    model->decoder().set_max_micro_batch(8);
    EXPECT_TRUE(bit_identical(whole, logits_in_chunks(*model, seq, KVType::F16, false, kPrefill, pool))) << len << " tokens";
    KVCache cache = model->decoder().make_cache(static_cast<int>(seq.size()), KVType::F16);
    std::vector<float> last;
    model->decoder().forward(seq, cache, last, LogitsFor::Last, pool);
    model->decoder().set_max_micro_batch(256);
    ASSERT_EQ(last.size(), vocab);
    EXPECT_EQ(std::memcmp(last.data(), whole.data() + (seq.size() - 1) * vocab, vocab * sizeof(float)), 0) << len << " tokens";
  }
}

INSTANTIATE_TEST_SUITE_P(TinyLlama32, KvConsistency, ::testing::Values("llama32.f16.gguf", "llama32.q8_0.gguf"),
                         [](const auto& info) { return info.param.substr(8, info.param.find(".gguf") - 8); });

}  // namespace
