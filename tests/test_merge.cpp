// `billion merge` (src/cli/cmd_merge.cpp), driven through the binary: folding a PEFT adapter into
// its base must give the logits of the base with the adapter attached (what `--lora` runs), the
// merged folder must load as an ordinary model, and bad inputs must be clear errors, not crashes.
//
// Cases: the PEFT-made adapters of tests/fixtures/lora (tiny Llama, and GPT-NeoX whose fused
// query_key_value rows are interleaved per head in Hugging Face order), and an all-linear random
// adapter on the tiny TinyLlama of tests/fixtures/engine (untied output, with a tokenizer, so the
// merged folder goes through Model::load and `billion generate` like any model).
//
// Tolerance: the merged weight is fl32(W + s·B·A) (B·A summed in double) while the adapter path
// computes W·x + s·B·(A·x) in float32; both are float32 evaluations of the same function, so
// logits agree to float rounding. We allow 1e-5 × max|logit| + 1e-6 (the differences measured
// are 2e-7–6e-7 relative; a merge with a wrong row order, scale or transposition misses by O(1)).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "formats/hf_folder.h"
#include "formats/safetensors.h"
#include "model/decoder.h"
#include "model/model.h"
#include "train/lora.h"

using namespace billion;
using namespace billion::train;
namespace fs = std::filesystem;

namespace {

const std::string kFixtures = BILLION_FIXTURES_DIR;

struct CliResult {
  int exit_code = -1;  // -1: killed by a signal; the shell reports a crash of its child as 128 + signal
  std::string output;  // stdout and stderr together
  bool clean_error() const { return exit_code >= 1 && exit_code < 128; }
};

CliResult billion_cli(const std::string& args) {
  CliResult r;
  const std::string command = std::string("\"") + BILLION_BINARY + "\" " + args + " 2>&1";
  FILE* p = popen(command.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string shell_arg(const fs::path& p) { return "\"" + p.string() + "\""; }

fs::path scratch_root() { return fs::temp_directory_path() / ("billion_test_merge_" + std::to_string(::getpid())); }

// Removes this process's scratch folder when the test program ends.
struct ScratchCleanup {
  ~ScratchCleanup() {
    std::error_code ec;
    fs::remove_all(scratch_root(), ec);
  }
} scratch_cleanup;

fs::path scratch(const std::string& name) {
  fs::path dir = scratch_root() / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir;
}

// Logits [ids, vocab] of a Hugging Face folder's weights, optionally with an adapter attached.
std::vector<float> folder_logits(const std::string& dir, const std::vector<int32_t>& ids, const std::string& adapter, ThreadPool& pool) {
  const auto spec = spec_from_hf_config(read_json_file(dir + "/config.json"), dir);
  SafetensorsCheckpoint ckpt(dir);
  ModelWeights w = bind_safetensors_weights(ckpt, spec, LoadQuantization::None, dir);
  if (!adapter.empty()) {
    const BaseLayout layout{false, w.layers[0].fused};
    attach_lora(w, load_peft(adapter, spec, layout), dir);
  }
  Decoder dec(spec, std::move(w));
  auto cache = dec.make_cache(int(ids.size()), KVType::F32);
  std::vector<float> logits;
  dec.forward(ids, cache, logits, LogitsFor::All, pool);
  return logits;
}

std::vector<float> model_logits(Model& m, const std::vector<int32_t>& ids, ThreadPool& pool) {
  auto cache = m.decoder().make_cache(int(ids.size()), KVType::F32);
  std::vector<float> logits;
  m.decoder().forward(ids, cache, logits, LogitsFor::All, pool);
  return logits;
}

double max_abs(const std::vector<float>& x) {
  double m = 0;
  for (float v : x) m = std::max(m, double(std::abs(v)));
  return m;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

}  // namespace

class MergePeftFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(MergePeftFixture, MergedLogitsEqualBaseWithAdapter) {
  const std::string family = GetParam();
  const std::string base = kFixtures + "/lora/" + family + "/base", adapter = kFixtures + "/lora/" + family + "/adapter_final";
  const fs::path out = scratch("merged_" + family);
  auto r = billion_cli("merge --model " + shell_arg(base) + " --lora " + shell_arg(adapter) + " --out " + shell_arg(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("merged"), std::string::npos) << r.output;
  ASSERT_TRUE(fs::exists(out / "config.json"));

  const auto ref = read_json_file(kFixtures + "/lora/" + family + "/reference.json");
  const auto ids = ref["eval_ids"].get<std::vector<int32_t>>();
  ThreadPool pool(2);
  const auto with_adapter = folder_logits(base, ids, adapter, pool);
  const auto merged = folder_logits(out.string(), ids, "", pool);  // loads: config + shape-checked binding
  const auto plain = folder_logits(base, ids, "", pool);
  ASSERT_EQ(merged.size(), with_adapter.size());
  const double tol = 1e-5 * max_abs(with_adapter) + 1e-6;
  std::printf("%s: max |logit| %.3f, merged vs adapter %.3g (bound %.3g), base vs adapter %.3g\n", family.c_str(), max_abs(with_adapter),
              max_diff(merged, with_adapter), tol, max_diff(plain, with_adapter));
  EXPECT_LT(max_diff(merged, with_adapter), tol) << family;
  // The adapter really changes the model, so the comparison above means something.
  EXPECT_GT(max_diff(plain, with_adapter), 100 * tol) << family;

  // Tensors the adapter does not target are copied byte for byte, with their dtype and shape.
  SafetensorsCheckpoint in(base), merged_ckpt(out.string());
  ASSERT_EQ(in.tensors().size(), merged_ckpt.tensors().size());
  const auto cfg = read_json_file(adapter + "/adapter_config.json");
  int changed = 0;
  for (const auto& [name, t] : in.tensors()) {
    const auto* m = merged_ckpt.find(name);
    ASSERT_NE(m, nullptr) << name;
    EXPECT_EQ(m->dtype, t->dtype) << name;
    EXPECT_EQ(m->shape, t->shape) << name;
    bool targeted = false;
    for (const auto& target : cfg["target_modules"]) targeted |= name.find("." + target.get<std::string>() + ".weight") != std::string::npos;
    const bool same = m->bytes.size() == t->bytes.size() && std::equal(m->bytes.begin(), m->bytes.end(), t->bytes.begin());
    if (targeted) changed += !same;
    else EXPECT_TRUE(same) << name << " is not targeted by the adapter but changed";
  }
  EXPECT_GT(changed, 0);
}

INSTANTIATE_TEST_SUITE_P(Families, MergePeftFixture, ::testing::Values("llama", "gptneox"));

// An all-linear adapter with random B (a fresh adapter has B = 0 and would merge to the base) on
// a model with a tokenizer: the merged folder loads through Model::load and `billion generate`
// on it gives the same greedy text as `billion generate --lora` on the base.
TEST(Merge, MergedModelLoadsAndGeneratesLikeLora) {
  const std::string base_dir = kFixtures + "/engine/tinyllama/f32";
  auto base = Model::load(base_dir);
  LoraConfig c;
  c.rank = 4;
  c.alpha = 8;
  c.targets = all_linear_targets(base->spec().family);
  LoraAdapterSet set = create_lora(base->spec(), base->decoder().weights(), c, 11);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-0.2f, 0.2f);
  for (auto& m : set.modules)
    for (float& b : m.b) b = u(rng);
  const fs::path adapter = scratch("tinyllama_adapter"), out = scratch("tinyllama_merged");
  save_peft(set, base->spec(), base_layout_of(base->decoder().weights(), base->format()), adapter.string(), "tinyllama-f32");

  auto r = billion_cli("merge --model " + shell_arg(base_dir) + " --lora " + shell_arg(adapter) + " --out " + shell_arg(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto merged = Model::load(out.string());
  EXPECT_EQ(merged->tokenizer().vocab_size(), base->tokenizer().vocab_size());
  EXPECT_EQ(merged->spec().parameter_count(), base->spec().parameter_count());

  auto ids = base->tokenizer().encode("The quick brown fox jumps over the lazy dog.");
  ASSERT_GT(ids.size(), 4u);
  ThreadPool pool(2);
  const auto plain = model_logits(*base, ids, pool);
  attach_lora(*base, set);
  const auto with_adapter = model_logits(*base, ids, pool);
  const auto merged_logits = model_logits(*merged, ids, pool);
  const double tol = 1e-5 * max_abs(with_adapter) + 1e-6;
  std::printf("tinyllama: max |logit| %.3f, merged vs adapter %.3g (bound %.3g), base vs adapter %.3g\n", max_abs(with_adapter),
              max_diff(merged_logits, with_adapter), tol, max_diff(plain, with_adapter));
  EXPECT_LT(max_diff(merged_logits, with_adapter), tol);
  EXPECT_GT(max_diff(plain, with_adapter), 100 * tol);

  const std::string gen = " --prompt \"The quick brown fox\" -n 24 --temp 0 --threads 1 --json";
  auto a = billion_cli("generate --model " + shell_arg(out) + gen);
  auto b = billion_cli("generate --model " + shell_arg(base_dir) + " --lora " + shell_arg(adapter) + gen);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  ASSERT_EQ(b.exit_code, 0) << b.output;
  // --json prints one object on stdout; stderr (merged into the output) may carry notes before it.
  auto text_of = [](const std::string& output) {
    auto j = nlohmann::json::parse(output.substr(output.find('{')));
    return j.at("text").get<std::string>();
  };
  EXPECT_EQ(text_of(a.output), text_of(b.output));
  EXPECT_FALSE(text_of(a.output).empty());
}

// #7's "adapter whose base model does not match", through merge; and the other ways it can fail.
TEST(Merge, BadInputsAreClearErrors) {
  const fs::path out = scratch("bad");
  auto r = billion_cli("merge --model " + shell_arg(kFixtures + "/lora/gptneox/base") + " --lora " + shell_arg(kFixtures + "/lora/llama/adapter_final") +
                       " --out " + shell_arg(out));
  EXPECT_TRUE(r.clean_error()) << r.exit_code << ": " << r.output;  // an error, not a crash
  EXPECT_NE(r.output.find("another base"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("adapter_final"), std::string::npos) << r.output;

  r = billion_cli("merge --model " + shell_arg(kFixtures + "/engine/tinyllama/tinyllama.f16.gguf") + " --lora " +
                  shell_arg(kFixtures + "/lora/llama/adapter_final") + " --out " + shell_arg(out));
  EXPECT_TRUE(r.clean_error()) << r.exit_code << ": " << r.output;
  EXPECT_NE(r.output.find("Hugging Face model folder"), std::string::npos) << r.output;

  r = billion_cli("merge --model " + shell_arg(kFixtures + "/lora/llama/base") + " --lora " + shell_arg(kFixtures + "/lora/no_such_adapter") +
                  " --out " + shell_arg(out));
  EXPECT_TRUE(r.clean_error()) << r.exit_code << ": " << r.output;
  EXPECT_NE(r.output.find("no_such_adapter"), std::string::npos) << r.output;

  // The adapter of another model of the same family but other sizes.
  r = billion_cli("merge --model " + shell_arg(kFixtures + "/engine/tinyllama/f32") + " --lora " + shell_arg(kFixtures + "/lora/llama/adapter_final") +
                  " --out " + shell_arg(out));
  EXPECT_TRUE(r.clean_error()) << r.exit_code << ": " << r.output;
  EXPECT_NE(r.output.find("adapter_final"), std::string::npos) << r.output;
}
