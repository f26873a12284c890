// Gradient checks for fine-tuning: every backward op of src/train/ops_backward against central
// finite differences in float64 on small random inputs, then the LoRA gradients of whole tiny
// models (Llama-like with GQA, GPT-NeoX-like with LayerNorm, fused per-head qkv, GELU and
// parallel residual, StableLM-like with biases and partial rotary), and the float path and
// gradient checkpointing against the double path.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "train/ops_backward.h"
#include "train/training_forward.h"

using namespace billion;
using namespace billion::train;

namespace {

std::vector<double> random_vec(std::mt19937& rng, size_t n, double scale = 1.0) {
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<float> random_fvec(std::mt19937& rng, size_t n, double scale = 1.0) {
  auto v = random_vec(rng, n, scale);
  return std::vector<float>(v.begin(), v.end());
}

// Central differences of f at x, compared with the analytic gradient g, entry by entry:
// |g - fd| <= atol + rtol·|fd|. Step 1e-6 in double leaves ~1e-9 truncation/rounding error.
void expect_grad_matches(const std::function<double()>& f, std::vector<double>& x, const std::vector<double>& g, const char* what,
                         double rtol = 1e-5, double atol = 1e-7) {
  ASSERT_EQ(x.size(), g.size()) << what;
  const double h = 1e-6;
  double max_err = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double fp = f();
    x[i] = keep - h;
    const double fm = f();
    x[i] = keep;
    const double fd = (fp - fm) / (2 * h);
    EXPECT_NEAR(g[i], fd, atol + rtol * std::abs(fd)) << what << " entry " << i;
    max_err = std::max(max_err, std::abs(g[i] - fd));
  }
  EXPECT_LT(max_err, 1e-5) << what;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

TEST(TrainOps, RmsNorm) {
  std::mt19937 rng(1);
  const int n = 3, h = 8;
  auto x = random_vec(rng, n * h);
  auto w = random_fvec(rng, h);
  auto r = random_vec(rng, n * h);  // loss = Σ y·r
  std::vector<double> y(n * h), rs(n);
  auto f = [&] {
    rmsnorm_forward(x.data(), w.data(), y.data(), rs.data(), n, h, 1e-5f);
    return dot(y, r);
  };
  f();
  std::vector<double> dx(n * h, 0.0);
  rmsnorm_backward(x.data(), w.data(), rs.data(), r.data(), dx.data(), n, h);
  expect_grad_matches(f, x, dx, "rmsnorm dx");
}

TEST(TrainOps, LayerNormWithBias) {
  std::mt19937 rng(2);
  const int n = 3, h = 8;
  auto x = random_vec(rng, n * h);
  auto w = random_fvec(rng, h), b = random_fvec(rng, h);
  auto r = random_vec(rng, n * h);
  std::vector<double> y(n * h), m(n), rs(n);
  auto f = [&] {
    layernorm_forward(x.data(), w.data(), b.data(), y.data(), m.data(), rs.data(), n, h, 1e-5f);
    return dot(y, r);
  };
  f();
  std::vector<double> dx(n * h, 0.0);
  layernorm_backward(x.data(), w.data(), m.data(), rs.data(), r.data(), dx.data(), n, h);
  expect_grad_matches(f, x, dx, "layernorm dx");
}

TEST(TrainOps, RopeBothStylesPartial) {
  for (bool adjacent : {false, true}) {
    std::mt19937 rng(3);
    const int n = 4, heads = 2, hd = 8, rot = adjacent ? 8 : 4;
    auto x = random_vec(rng, n * heads * hd);
    auto r = random_vec(rng, x.size());
    std::vector<float> cos(n * rot / 2), sin(n * rot / 2);
    for (int t = 0; t < n; ++t)
      for (int i = 0; i < rot / 2; ++i) {
        cos[t * rot / 2 + i] = std::cos(0.3f * t * (i + 1));
        sin[t * rot / 2 + i] = std::sin(0.3f * t * (i + 1));
      }
    auto f = [&] {
      auto y = x;
      rope_forward(y.data(), n, heads, hd, rot, cos.data(), sin.data(), adjacent);
      return dot(y, r);
    };
    auto dx = r;
    rope_backward(dx.data(), n, heads, hd, rot, cos.data(), sin.data(), adjacent);
    expect_grad_matches(f, x, dx, adjacent ? "rope adjacent" : "rope half-split");
  }
}

TEST(TrainOps, CausalAttentionGqa) {
  std::mt19937 rng(4);
  const int n = 5, nh = 4, nkv = 2, hd = 4;
  auto q = random_vec(rng, n * nh * hd), k = random_vec(rng, n * nkv * hd), v = random_vec(rng, n * nkv * hd);
  auto r = random_vec(rng, n * nh * hd);
  std::vector<double> out(n * nh * hd), lse(nh * n);
  ThreadPool pool(2);
  auto f = [&] {
    attention_forward(q.data(), k.data(), v.data(), out.data(), lse.data(), n, nh, nkv, hd, &pool);
    return dot(out, r);
  };
  f();
  std::vector<double> dq(q.size(), 0.0), dk(k.size(), 0.0), dv(v.size(), 0.0);
  attention_backward(q.data(), k.data(), v.data(), out.data(), lse.data(), r.data(), dq.data(), dk.data(), dv.data(), n, nh, nkv, hd,
                     &pool);
  expect_grad_matches(f, q, dq, "attention dq");
  expect_grad_matches(f, k, dk, "attention dk");
  expect_grad_matches(f, v, dv, "attention dv");
  // Causality: the first token's output is its own value vector.
  f();
  for (int d = 0; d < hd; ++d) EXPECT_NEAR(out[d], v[d], 1e-12);
}

TEST(TrainOps, SwiGluAndGelu) {
  std::mt19937 rng(5);
  const int n = 16;
  auto g = random_vec(rng, n, 2.0), u = random_vec(rng, n), r = random_vec(rng, n);
  std::vector<double> y(n);
  auto f = [&] {
    swiglu_forward(g.data(), u.data(), y.data(), n);
    return dot(y, r);
  };
  std::vector<double> dg(n, 0.0), du(n, 0.0);
  swiglu_backward(g.data(), u.data(), r.data(), dg.data(), du.data(), n);
  expect_grad_matches(f, g, dg, "swiglu dgate");
  expect_grad_matches(f, u, du, "swiglu dup");
  auto fg = [&] {
    gelu_forward(g.data(), y.data(), n);
    return dot(y, r);
  };
  std::vector<double> dx(n, 0.0);
  gelu_backward(g.data(), r.data(), dx.data(), n);
  expect_grad_matches(fg, g, dx, "gelu");
}

TEST(TrainOps, CrossEntropyIgnoreIndex) {
  std::mt19937 rng(6);
  const int n = 4, V = 7;
  auto logits = random_vec(rng, n * V, 2.0);
  std::vector<int32_t> targets = {3, -100, 0, 6};
  auto f = [&] {
    auto l = logits;
    return cross_entropy_forward_backward(l.data(), targets.data(), n, V, 1.0, nullptr);
  };
  auto g = logits;
  cross_entropy_forward_backward(g.data(), targets.data(), n, V, 1.0, nullptr);
  expect_grad_matches(f, logits, g, "cross-entropy");
  for (int i = 0; i < V; ++i) EXPECT_EQ(g[V + i], 0.0);  // the ignored row
  // The loss of a uniform row is log(V).
  std::vector<double> flat(V, 0.5);
  int32_t t0 = 2;
  EXPECT_NEAR(cross_entropy_forward_backward(flat.data(), &t0, 1, V, 1.0, nullptr), std::log(double(V)), 1e-12);
}

TEST(TrainOps, LoraBranch) {
  std::mt19937 rng(7);
  const int n = 3, in = 6, out = 5, r = 2;
  auto x = random_vec(rng, n * in), a = random_vec(rng, r * in), b = random_vec(rng, out * r), rr = random_vec(rng, n * out);
  const double scale = 2.0;
  std::vector<double> u(n * r);
  ThreadPool pool(2);
  auto f = [&] {
    std::vector<double> y(n * out, 0.0);
    lora_forward(x.data(), a.data(), b.data(), scale, u.data(), y.data(), n, in, out, r, &pool);
    return dot(y, rr);
  };
  f();
  std::vector<double> ga(a.size(), 0.0), gb(b.size(), 0.0), dx(x.size(), 0.0);
  lora_backward(x.data(), a.data(), b.data(), scale, u.data(), rr.data(), ga.data(), gb.data(), dx.data(), n, in, out, r, &pool);
  expect_grad_matches(f, x, dx, "lora dx");
  expect_grad_matches(f, a, ga, "lora dA");
  expect_grad_matches(f, b, gb, "lora dB");
}

TEST(TrainOps, EmbeddingBackward) {
  std::mt19937 rng(8);
  const int n = 4, h = 3, V = 5;
  std::vector<int32_t> ids = {1, 4, 1, 0};
  auto table = random_vec(rng, V * h), r = random_vec(rng, n * h);
  auto f = [&] {
    double s = 0;
    for (int t = 0; t < n; ++t)
      for (int i = 0; i < h; ++i) s += table[ids[t] * h + i] * r[t * h + i];
    return s;
  };
  std::vector<double> g(table.size(), 0.0);
  embedding_backward(ids.data(), r.data(), g.data(), n, h);
  expect_grad_matches(f, table, g, "embedding");
}

// ---------------------------------------------------------------------------------------------
// Whole tiny models.

namespace {

struct TinyModel {
  ArchitectureSpec spec;
  ModelWeights weights;
  std::vector<std::vector<float>> storage;

  kernels::WeightView matrix(std::mt19937& rng, int64_t rows, int64_t cols) {
    storage.push_back(random_fvec(rng, size_t(rows * cols), 0.3));
    return {GgmlType::F32, storage.back().data(), rows, cols, size_t(cols) * 4};
  }
  Linear linear(std::mt19937& rng, int64_t out, int64_t in, bool bias) {
    Linear l;
    l.weight = matrix(rng, out, in);
    if (bias) l.bias = random_fvec(rng, out, 0.1);
    return l;
  }
};

std::unique_ptr<TinyModel> make_tiny(const std::string& family, uint32_t seed) {
  auto m = std::make_unique<TinyModel>();
  std::mt19937 rng(seed);
  ArchitectureSpec& s = m->spec;
  s.family = family;
  s.n_layers = 2;
  s.hidden = 8;
  s.n_heads = 4;
  s.n_kv_heads = family == "llama" ? 2 : 4;
  s.head_dim = s.hidden / s.n_heads * 2;  // 4: heads × head_dim may differ from hidden
  s.intermediate = 12;
  s.vocab_size = 11;
  s.context_length = 64;
  s.norm = family == "llama" ? NormKind::RMSNorm : NormKind::LayerNorm;
  s.mlp = family == "gptneox" ? MlpKind::GELU : MlpKind::SwiGLU;
  s.qkv_bias = family != "llama";
  s.out_bias = family == "gptneox";
  s.mlp_bias = family == "gptneox";
  s.parallel_residual = family == "gptneox";
  s.rotary_dims = family == "llama" ? s.head_dim : s.head_dim / 2;
  s.rope_theta = 10000;
  s.rope_style = RopeStyle::HalfSplit;
  const int64_t H = s.hidden, qd = int64_t(s.n_heads) * s.head_dim, kvd = int64_t(s.n_kv_heads) * s.head_dim;
  ModelWeights& w = m->weights;
  w.token_embedding = m->matrix(rng, s.vocab_size, H);
  w.final_norm_w = random_fvec(rng, H, 0.3);
  for (auto& x : w.final_norm_w) x += 1;
  if (s.norm == NormKind::LayerNorm) w.final_norm_b = random_fvec(rng, H, 0.1);
  w.output.weight = m->matrix(rng, s.vocab_size, H);
  for (int l = 0; l < s.n_layers; ++l) {
    LayerWeights L;
    L.attn_norm_w = random_fvec(rng, H, 0.3);
    L.ffn_norm_w = random_fvec(rng, H, 0.3);
    for (auto& x : L.attn_norm_w) x += 1;
    for (auto& x : L.ffn_norm_w) x += 1;
    if (s.norm == NormKind::LayerNorm) {
      L.attn_norm_b = random_fvec(rng, H, 0.1);
      L.ffn_norm_b = random_fvec(rng, H, 0.1);
    }
    if (family == "gptneox") {
      L.fused = FusedQkvLayout::PerHead;
      L.qkv = m->linear(rng, qd + 2 * kvd, H, true);
    } else {
      L.q = m->linear(rng, qd, H, s.qkv_bias);
      L.k = m->linear(rng, kvd, H, s.qkv_bias);
      L.v = m->linear(rng, kvd, H, s.qkv_bias);
      L.gate = m->linear(rng, s.intermediate, H, s.mlp_bias);
    }
    L.o = m->linear(rng, H, qd, s.out_bias);
    L.up = m->linear(rng, s.intermediate, H, s.mlp_bias);
    L.down = m->linear(rng, H, s.intermediate, s.mlp_bias);
    w.layers.push_back(std::move(L));
  }
  return m;
}

PackedBatch tiny_batch() {
  // Two sequences packed: attention and positions restart at index 5.
  PackedBatch b;
  b.tokens = {1, 4, 7, 2, 9, 3, 3, 10, 0};
  b.targets = {-100, -100, 2, 9, -100, -100, 10, 0, -100};
  b.starts = {0, 5};
  return b;
}

LoraAdapterSet tiny_lora(const TinyModel& m) {
  LoraConfig c;
  c.rank = 2;
  c.alpha = 4;
  c.targets = {"all-linear"};
  auto set = create_lora(m.spec, m.weights, c, 42);
  std::mt19937 rng(9);  // B = 0 would make dA vanish; give B values so both are tested
  for (auto& mod : set.modules) mod.b = random_fvec(rng, mod.b.size(), 0.5);
  return set;
}

}  // namespace

class TinyModelGrad : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyModelGrad, LoraGradientsMatchFiniteDifferences) {
  auto m = make_tiny(GetParam(), 11);
  ThreadPool pool(1);  // thousands of tiny forwards: hand-offs between threads would dominate
  FrozenBase base(m->spec, m->weights, pool);
  auto set = tiny_lora(*m);
  TrainingModel<double> model(base, set, false, 1);
  auto batch = tiny_batch();
  model.zero_grad();
  const double loss = model.run(batch, 1.0, true, pool);
  EXPECT_GT(loss, 0.0);
  auto f = [&] { return model.run(batch, 1.0, false, pool); };
  EXPECT_NEAR(f(), loss, 1e-12);  // forward-only gives the same loss
  for (auto& p : model.params()) {
    auto ga = p.ga, gb = p.gb;
    expect_grad_matches(f, p.a, ga, "tiny model dA", 1e-5, 1e-8);
    expect_grad_matches(f, p.b, gb, "tiny model dB", 1e-5, 1e-8);
  }
}

TEST_P(TinyModelGrad, FloatAndRecomputeAgreeWithDouble) {
  auto m = make_tiny(GetParam(), 12);
  ThreadPool pool(2);
  FrozenBase base(m->spec, m->weights, pool);
  auto set = tiny_lora(*m);
  auto batch = tiny_batch();
  TrainingModel<double> ref(base, set, false, 1);
  const double loss_ref = ref.run(batch, 1.0, true, pool);
  for (bool recompute : {false, true}) {
    TrainingModel<float> fm(base, set, recompute, 1);
    const double loss = fm.run(batch, 1.0, true, pool);
    EXPECT_NEAR(loss, loss_ref, 1e-4 * std::abs(loss_ref));
    for (size_t i = 0; i < ref.params().size(); ++i) {
      const auto& pd = ref.params()[i];
      const auto& pf = fm.params()[i];
      for (size_t j = 0; j < pd.ga.size(); ++j) EXPECT_NEAR(pf.ga[j], pd.ga[j], 1e-4 + 1e-3 * std::abs(pd.ga[j]));
      for (size_t j = 0; j < pd.gb.size(); ++j) EXPECT_NEAR(pf.gb[j], pd.gb[j], 1e-4 + 1e-3 * std::abs(pd.gb[j]));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TinyModelGrad, ::testing::Values("llama", "gptneox", "stablelm"));
