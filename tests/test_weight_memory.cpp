// Where the loader puts weights (model/weights.h): HugePageBuffer hands out 2 MiB aligned
// memory that is fully usable; a model loaded for the CPU kernels has every matrix a matmul
// reads in owned memory and only a looked-up embedding left in the file; the copy changes no
// value (logits bit for bit equal to the same model left in the file's pages); a GPU-style load
// (no interleave) keeps everything in the file.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/huge_page_buffer.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "model/decoder.h"
#include "model/model.h"

using namespace billion;

namespace {

const std::string kEngine = std::string(BILLION_FIXTURES_DIR) + "/engine/";

std::vector<float> logits_of(Model& model, const std::vector<int32_t>& tokens) {
  ThreadPool pool(2);
  KVCache cache = model.decoder().make_cache(0, KVType::F16);
  std::vector<float> logits;
  model.decoder().forward(tokens, cache, logits, LogitsFor::All, pool);
  return logits;
}

}  // namespace

TEST(HugePageBuffer, AlignedAndUsableToTheLastByte) {
  for (size_t bytes : {size_t{1}, size_t{4096} + 3, size_t{3} << 20, size_t{65} << 20}) {
    HugePageBuffer b(bytes);
    ASSERT_EQ(b.size(), bytes);
    ASSERT_NE(b.data(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % (size_t{2} << 20), 0u) << bytes;
    std::memset(b.data(), 0xA5, bytes);
    EXPECT_EQ(b.data()[0], 0xA5);
    EXPECT_EQ(b.data()[bytes - 1], 0xA5);
  }
  HugePageBuffer empty(0);
  EXPECT_EQ(empty.size(), 0u);
}

// TinyLlama's F16 fixture: untied output, F16 matrices, re-laid in runs of four rows where the
// active table wants it (AVX2: kernels::KernelTable::interleave_half_at_load), else copied as
// they are. Either way the logits equal those of the same model left in the file's pages: the
// layout changes no value and the interleaved tile sums in its plain tile's order.
TEST(WeightMemory, MatricesOwnedEmbeddingMappedValuesUnchanged) {
  const std::string path = kEngine + "tinyllama/tinyllama.f16.gguf";
  auto owned = Model::load(path);
  const ModelWeights& w = owned->decoder().weights();
  const auto& e = w.token_embedding;
  const uint64_t embedding_bytes = e.rows * e.row_bytes;
  EXPECT_EQ(w.mapped_bytes, embedding_bytes) << "only the looked-up embedding stays in the file";
  EXPECT_GT(w.owned_bytes, 0u);
  EXPECT_EQ(w.owned.size(), 1 + 7 * w.layers.size()) << "output + q, k, v, o, gate, up, down per layer";
  for (const auto& buffer : w.owned) EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer->data()) % (size_t{2} << 20), 0u);

  LoadOptions in_file;
  in_file.copy_weights = false;
  auto mapped = Model::load(path, in_file);
  // Nothing copied; re-laid (all the owned model's matrices) or not at all.
  const bool relaid = kernels::active_kernels().interleave_half_at_load;
  EXPECT_EQ(mapped->decoder().weights().owned_bytes, relaid ? w.owned_bytes : 0u) << isa_name(kernels::active_kernels().isa);

  LoadOptions gpu;
  gpu.interleave_weights = false;
  auto gpu_style = Model::load(path, gpu);
  EXPECT_EQ(gpu_style->decoder().weights().owned_bytes, 0u);

  const std::vector<int32_t> tokens = {1, 17, 200, 42, 99, 3};
  const auto a = logits_of(*owned, tokens), b = logits_of(*mapped, tokens);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

// Llama-3.2's fixture ties its output to the embedding: then the embedding is a matmul's matrix
// and is moved out of the file too.
TEST(WeightMemory, TiedEmbeddingIsOwned) {
  auto model = Model::load(kEngine + "llama32/llama32.f16.gguf");
  const ModelWeights& w = model->decoder().weights();
  ASSERT_EQ(w.output.weight.data, w.token_embedding.data) << "the fixture should be tied";
  EXPECT_EQ(w.mapped_bytes, 0u);
}
