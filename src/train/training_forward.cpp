// Training forward and backward through the decoder (see training_forward.h). A block is
//   sequential (Llama, StableLM-2):  x += attn(norm1(x));  x += mlp(norm2(x))
//   parallel (GPT-NeoX):             x += attn(norm1(x)) + mlp(norm2(x))
//   parallel, one norm (StableLM):   x += attn(norm1(x)) + mlp(norm1(x))
// and its backward applies the same graph in reverse, accumulating into the residual gradient.
#include "train/training_forward.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <random>
#include <type_traits>

#include "core/error.h"
#include "kernels/quant.h"
#include "train/ops_backward.h"

namespace billion::train {
namespace {

FrozenLinear freeze(const Linear& l, ThreadPool& pool) {
  FrozenLinear f;
  f.in = l.weight.cols;
  f.out = l.weight.rows;
  f.w.resize(size_t(f.out) * f.in);
  f.wt.resize(size_t(f.out) * f.in);
  pool.parallel_for(f.out, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) kernels::dequantize_weight_row(l.weight, r, f.w.data() + r * f.in);
  });
  // Transpose in 64×64 tiles (cache friendly), split over output columns of wt.
  pool.parallel_for((f.in + 63) / 64, [&](int64_t b0, int64_t b1) {
    for (int64_t ib = b0 * 64; ib < std::min(f.in, b1 * 64); ib += 64)
      for (int64_t ob = 0; ob < f.out; ob += 64)
        for (int64_t i = ib; i < std::min(f.in, ib + 64); ++i)
          for (int64_t o = ob; o < std::min(f.out, ob + 64); ++o) f.wt[i * f.out + o] = f.w[o * f.in + i];
  });
  f.bias = l.bias;
  return f;
}

kernels::WeightView f32_view(const std::vector<float>& m, int64_t rows, int64_t cols) {
  return {GgmlType::F32, m.data(), rows, cols, size_t(cols) * sizeof(float)};
}

template <typename T>
void zero(std::vector<T>& v, size_t n) {
  v.assign(n, T(0));
}

}  // namespace

FrozenBase::FrozenBase(const ArchitectureSpec& spec, const ModelWeights& w, ThreadPool& pool) : spec_(spec) {
  if (spec.qk_layernorm) throw Error(fmt::format("fine-tuning: {} models with qk_layernorm are not supported yet", spec.family));
  fused_ = w.layers.empty() ? FusedQkvLayout::None : w.layers[0].fused;
  embedding = w.token_embedding;
  fnw = w.final_norm_w;
  fnb = w.final_norm_b;
  output = freeze(w.output, pool);
  bytes_ += output.w.size() * 8;
  for (int l = 0; l < spec.n_layers; ++l) {
    const LayerWeights& L = w.layers[l];
    FrozenLayer f;
    f.n1w = L.attn_norm_w;
    f.n1b = L.attn_norm_b;
    f.n2w = L.ffn_norm_w;
    f.n2b = L.ffn_norm_b;
    for (int p = 0; p < kProjCount; ++p)
      if (const Linear* lin = base_linear(w, l, Proj(p))) {
        f.lin[p] = freeze(*lin, pool);
        bytes_ += f.lin[p].w.size() * 8;
      }
    layers.push_back(std::move(f));
  }
  // As model/decoder: transformers' float32 inv_freq, llama3 scaling, or GGUF divisors.
  auto inv = spec.rope_inverse_frequencies();
  inv_freq.resize(inv.size());
  for (size_t i = 0; i < inv.size(); ++i) {
    float b = static_cast<float>(1.0 / std::pow(spec.rope_theta, static_cast<double>(static_cast<float>(2 * i) / spec.rotary_dims)));
    inv_freq[i] = spec.llama3_scaling ? static_cast<float>(inv[i]) : b;
    if (!w.rope_freq_divisors.empty()) inv_freq[i] = b / w.rope_freq_divisors[i];
  }
}

template <typename T>
TrainingModel<T>::TrainingModel(const FrozenBase& base, const LoraAdapterSet& lora, bool recompute, uint64_t seed)
    : base_(base), scale_(T(lora.scale())), dropout_(lora.dropout), recompute_(recompute), seed_(seed) {
  slot_.assign(base.spec().n_layers, {});
  for (auto& s : slot_) s.fill(-1);
  for (const auto& m : lora.modules) {
    const FrozenLinear& f = base.layers.at(m.layer).lin[int(m.proj)];
    if (!f.present() || f.in != m.in || f.out != m.out)
      throw Error(fmt::format("LoRA module of layer {} does not match the base projection", m.layer));
    LoraParams<T> p;
    p.layer = m.layer;
    p.proj = m.proj;
    p.in = m.in;
    p.out = m.out;
    p.r = lora.rank;
    p.a.assign(m.a.begin(), m.a.end());
    p.b.assign(m.b.begin(), m.b.end());
    p.ga.assign(p.a.size(), T(0));
    p.gb.assign(p.b.size(), T(0));
    slot_[m.layer][int(m.proj)] = int(params_.size());
    params_.push_back(std::move(p));
  }
}

template <typename T>
void TrainingModel<T>::zero_grad() {
  for (auto& p : params_) {
    std::fill(p.ga.begin(), p.ga.end(), T(0));
    std::fill(p.gb.begin(), p.gb.end(), T(0));
  }
}

template <typename T>
void TrainingModel<T>::export_to(LoraAdapterSet& set) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    set.modules[i].a.assign(params_[i].a.begin(), params_[i].a.end());
    set.modules[i].b.assign(params_[i].b.begin(), params_[i].b.end());
  }
}

template <typename T>
void TrainingModel<T>::norm_fwd(const std::vector<float>& w, const std::vector<float>& b, const T* x, T* y, T* m, T* r, int64_t n) const {
  const auto& s = base_.spec();
  if (s.norm == NormKind::RMSNorm) rmsnorm_forward(x, w.data(), y, r, n, s.hidden, s.norm_eps);
  else layernorm_forward(x, w.data(), b.empty() ? nullptr : b.data(), y, m, r, n, s.hidden, s.norm_eps);
}

template <typename T>
void TrainingModel<T>::norm_bwd(const std::vector<float>& w, const T* x, const T* m, const T* r, const T* dy, T* dx, int64_t n) const {
  const auto& s = base_.spec();
  if (s.norm == NormKind::RMSNorm) rmsnorm_backward(x, w.data(), r, dy, dx, n, s.hidden);
  else layernorm_backward(x, w.data(), m, r, dy, dx, n, s.hidden);
}

template <typename T>
void TrainingModel<T>::project(int layer, Proj p, const T* x, T* y, int64_t n, LayerActs& a, ThreadPool& pool) {
  const FrozenLinear& L = base_.layers[layer].lin[int(p)];
  if constexpr (std::is_same_v<T, float>) kernels::matmul(f32_view(L.w, L.out, L.in), x, y, n, pool);
  else matmul_nt(x, L.w.data(), y, n, L.in, L.out, &pool);
  if (!L.bias.empty())
    for (int64_t t = 0; t < n; ++t)
      for (int64_t o = 0; o < L.out; ++o) y[t * L.out + o] += T(L.bias[o]);
  const int s = slot_[layer][int(p)];
  if (s < 0) return;
  LoraParams<T>& P = params_[s];
  const T* xin = x;
  if (training_ && dropout_ > 0) {
    // PEFT: lora_B(lora_A(dropout(x))). The mask comes from (seed, step, layer, proj), so the
    // recomputation in the backward pass draws the same one.
    auto& xd = a.lora_x[int(p)];
    xd.resize(size_t(n) * L.in);
    std::mt19937_64 rng(seed_ ^ (counter_ * 0x9E3779B97F4A7C15ull) ^ (uint64_t(layer) << 40) ^ (uint64_t(p) << 56));
    const T keep = T(1) / T(1 - dropout_);
    for (size_t i = 0; i < xd.size(); ++i) xd[i] = (double(rng() >> 11) * 0x1.0p-53 < dropout_) ? T(0) : x[i] * keep;
    xin = xd.data();
  }
  auto& u = a.lora_u[int(p)];
  u.resize(size_t(n) * P.r);
  lora_forward(xin, P.a.data(), P.b.data(), scale_, u.data(), y, n, L.in, L.out, P.r, &pool);
}

template <typename T>
void TrainingModel<T>::project_back(int layer, Proj p, const T* x, const T* dy, T* dx, int64_t n, LayerActs& a, ThreadPool& pool) {
  const FrozenLinear& L = base_.layers[layer].lin[int(p)];
  if constexpr (std::is_same_v<T, float>) {
    // dx += dy · W, i.e. a matmul against Wᵀ stored [in, out].
    thread_local std::vector<float> tmp;
    tmp.resize(size_t(n) * L.in);
    kernels::matmul(f32_view(L.wt, L.in, L.out), dy, tmp.data(), n, pool);
    for (size_t i = 0; i < tmp.size(); ++i) dx[i] += tmp[i];
  } else {
    pool.parallel_for(n, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t o = 0; o < L.out; ++o) {
          const T d = dy[t * L.out + o];
          const float* wr = L.w.data() + o * L.in;
          for (int64_t i = 0; i < L.in; ++i) dx[t * L.in + i] += d * T(wr[i]);
        }
    });
  }
  const int s = slot_[layer][int(p)];
  if (s < 0) return;
  LoraParams<T>& P = params_[s];
  const T* xin = (training_ && dropout_ > 0) ? a.lora_x[int(p)].data() : x;
  lora_backward(xin, P.a.data(), P.b.data(), scale_, a.lora_u[int(p)].data(), dy, P.ga.data(), P.gb.data(), dx, n, L.in, L.out, P.r,
                &pool);
}

template <typename T>
void TrainingModel<T>::layer_forward(int layer, LayerActs& a, T* out, ThreadPool& pool) {
  const auto& s = base_.spec();
  const FrozenLayer& F = base_.layers[layer];
  const int64_t n = int64_t(a.x.size()) / s.hidden, H = s.hidden, hd = s.head_dim;
  const int64_t qd = int64_t(s.n_heads) * hd, kvd = int64_t(s.n_kv_heads) * hd, FF = s.intermediate;
  a.h1.resize(n * H), a.m1.resize(n), a.r1.resize(n);
  norm_fwd(F.n1w, F.n1b, a.x.data(), a.h1.data(), a.m1.data(), a.r1.data(), n);
  a.q.resize(n * qd), a.k.resize(n * kvd), a.v.resize(n * kvd);
  if (base_.fused() == FusedQkvLayout::None) {
    project(layer, Proj::Q, a.h1.data(), a.q.data(), n, a, pool);
    project(layer, Proj::K, a.h1.data(), a.k.data(), n, a, pool);
    project(layer, Proj::V, a.h1.data(), a.v.data(), n, a, pool);
  } else {
    const int64_t W = qd + 2 * kvd;
    std::vector<T> qkv(n * W);  // [n, q|k|v] in the stored layout
    project(layer, Proj::QKV, a.h1.data(), qkv.data(), n, a, pool);
    for (int64_t t = 0; t < n; ++t) {
      const T* row = qkv.data() + t * W;
      if (base_.fused() == FusedQkvLayout::Blocks) {
        std::copy(row, row + qd, a.q.data() + t * qd);
        std::copy(row + qd, row + qd + kvd, a.k.data() + t * kvd);
        std::copy(row + qd + kvd, row + W, a.v.data() + t * kvd);
      } else {  // PerHead [n_heads, 3, hd]
        for (int64_t h = 0; h < s.n_heads; ++h) {
          std::copy(row + h * 3 * hd, row + h * 3 * hd + hd, a.q.data() + t * qd + h * hd);
          std::copy(row + h * 3 * hd + hd, row + h * 3 * hd + 2 * hd, a.k.data() + t * kvd + h * hd);
          std::copy(row + h * 3 * hd + 2 * hd, row + h * 3 * hd + 3 * hd, a.v.data() + t * kvd + h * hd);
        }
      }
    }
  }
  const bool adjacent = s.rope_style == RopeStyle::AdjacentPairs;
  rope_forward(a.q.data(), n, s.n_heads, hd, s.rotary_dims, cos_.data(), sin_.data(), adjacent);
  rope_forward(a.k.data(), n, s.n_kv_heads, hd, s.rotary_dims, cos_.data(), sin_.data(), adjacent);
  a.att.resize(n * qd), a.lse.resize(n * s.n_heads);
  for (size_t i = 0; i + 1 < seg_.size(); ++i) {
    const int64_t s0 = seg_[i], len = seg_[i + 1] - s0;
    attention_forward(a.q.data() + s0 * qd, a.k.data() + s0 * kvd, a.v.data() + s0 * kvd, a.att.data() + s0 * qd,
                      a.lse.data() + s0 * s.n_heads, len, s.n_heads, s.n_kv_heads, hd, &pool);
  }
  std::vector<T> o(n * H), mout(n * H);  // [n, H] attention and MLP outputs
  project(layer, Proj::O, a.att.data(), o.data(), n, a, pool);
  const bool parallel = s.parallel_residual;
  a.h2.resize(n * H), a.m2.resize(n), a.r2.resize(n);
  if (!parallel) {
    a.xmid.resize(n * H);
    for (int64_t i = 0; i < n * H; ++i) a.xmid[i] = a.x[i] + o[i];
    norm_fwd(F.n2w, F.n2b, a.xmid.data(), a.h2.data(), a.m2.data(), a.r2.data(), n);
  } else if (!F.n2w.empty()) {
    norm_fwd(F.n2w, F.n2b, a.x.data(), a.h2.data(), a.m2.data(), a.r2.data(), n);
  } else {
    a.h2 = a.h1;
  }
  a.up.resize(n * FF), a.act.resize(n * FF);
  project(layer, Proj::Up, a.h2.data(), a.up.data(), n, a, pool);
  if (s.mlp == MlpKind::SwiGLU) {
    a.gate.resize(n * FF);
    project(layer, Proj::Gate, a.h2.data(), a.gate.data(), n, a, pool);
    swiglu_forward(a.gate.data(), a.up.data(), a.act.data(), n * FF);
  } else {
    gelu_forward(a.up.data(), a.act.data(), n * FF);
  }
  project(layer, Proj::Down, a.act.data(), mout.data(), n, a, pool);
  if (!parallel)
    for (int64_t i = 0; i < n * H; ++i) out[i] = a.xmid[i] + mout[i];
  else
    for (int64_t i = 0; i < n * H; ++i) out[i] = a.x[i] + (mout[i] + o[i]);
}

template <typename T>
void TrainingModel<T>::layer_backward(int layer, LayerActs& a, const T* dout, T* dx, ThreadPool& pool) {
  const auto& s = base_.spec();
  const FrozenLayer& F = base_.layers[layer];
  const int64_t n = int64_t(a.x.size()) / s.hidden, H = s.hidden, hd = s.head_dim;
  const int64_t qd = int64_t(s.n_heads) * hd, kvd = int64_t(s.n_kv_heads) * hd, FF = s.intermediate;
  const bool parallel = s.parallel_residual;
  std::vector<T> dact(n * FF, T(0)), dup(n * FF, T(0)), dh2(n * H, T(0));
  project_back(layer, Proj::Down, a.act.data(), dout, dact.data(), n, a, pool);
  if (s.mlp == MlpKind::SwiGLU) {
    std::vector<T> dgate(n * FF, T(0));
    swiglu_backward(a.gate.data(), a.up.data(), dact.data(), dgate.data(), dup.data(), n * FF);
    project_back(layer, Proj::Gate, a.h2.data(), dgate.data(), dh2.data(), n, a, pool);
  } else {
    gelu_backward(a.up.data(), dact.data(), dup.data(), n * FF);
  }
  project_back(layer, Proj::Up, a.h2.data(), dup.data(), dh2.data(), n, a, pool);

  std::vector<T> dh1(n * H, T(0));
  std::copy(dout, dout + n * H, dx);  // the residual path
  if (!parallel) {
    norm_bwd(F.n2w, a.xmid.data(), a.m2.data(), a.r2.data(), dh2.data(), dx, n);  // dx now = d(xmid)
  } else if (!F.n2w.empty()) {
    norm_bwd(F.n2w, a.x.data(), a.m2.data(), a.r2.data(), dh2.data(), dx, n);
  } else {
    dh1 = dh2;  // the MLP read norm 1's output
  }
  // The attention output's gradient: d(xmid) for sequential blocks, dout for parallel ones.
  std::vector<T> dattn_out(dx, dx + n * H);
  if (parallel) std::copy(dout, dout + n * H, dattn_out.begin());
  std::vector<T> datt(n * qd, T(0)), dq(n * qd, T(0)), dk(n * kvd, T(0)), dv(n * kvd, T(0));
  project_back(layer, Proj::O, a.att.data(), dattn_out.data(), datt.data(), n, a, pool);
  for (size_t i = 0; i + 1 < seg_.size(); ++i) {
    const int64_t s0 = seg_[i], len = seg_[i + 1] - s0;
    attention_backward(a.q.data() + s0 * qd, a.k.data() + s0 * kvd, a.v.data() + s0 * kvd, a.att.data() + s0 * qd,
                       a.lse.data() + s0 * s.n_heads, datt.data() + s0 * qd, dq.data() + s0 * qd, dk.data() + s0 * kvd,
                       dv.data() + s0 * kvd, len, s.n_heads, s.n_kv_heads, hd, &pool);
  }
  const bool adjacent = s.rope_style == RopeStyle::AdjacentPairs;
  rope_backward(dq.data(), n, s.n_heads, hd, s.rotary_dims, cos_.data(), sin_.data(), adjacent);
  rope_backward(dk.data(), n, s.n_kv_heads, hd, s.rotary_dims, cos_.data(), sin_.data(), adjacent);
  if (base_.fused() == FusedQkvLayout::None) {
    project_back(layer, Proj::Q, a.h1.data(), dq.data(), dh1.data(), n, a, pool);
    project_back(layer, Proj::K, a.h1.data(), dk.data(), dh1.data(), n, a, pool);
    project_back(layer, Proj::V, a.h1.data(), dv.data(), dh1.data(), n, a, pool);
  } else {
    const int64_t W = qd + 2 * kvd;
    std::vector<T> dqkv(n * W);
    for (int64_t t = 0; t < n; ++t) {
      T* row = dqkv.data() + t * W;
      if (base_.fused() == FusedQkvLayout::Blocks) {
        std::copy(dq.data() + t * qd, dq.data() + (t + 1) * qd, row);
        std::copy(dk.data() + t * kvd, dk.data() + (t + 1) * kvd, row + qd);
        std::copy(dv.data() + t * kvd, dv.data() + (t + 1) * kvd, row + qd + kvd);
      } else {
        for (int64_t h = 0; h < s.n_heads; ++h) {
          std::copy(dq.data() + t * qd + h * hd, dq.data() + t * qd + (h + 1) * hd, row + h * 3 * hd);
          std::copy(dk.data() + t * kvd + h * hd, dk.data() + t * kvd + (h + 1) * hd, row + h * 3 * hd + hd);
          std::copy(dv.data() + t * kvd + h * hd, dv.data() + t * kvd + (h + 1) * hd, row + h * 3 * hd + 2 * hd);
        }
      }
    }
    project_back(layer, Proj::QKV, a.h1.data(), dqkv.data(), dh1.data(), n, a, pool);
  }
  norm_bwd(F.n1w, a.x.data(), a.m1.data(), a.r1.data(), dh1.data(), dx, n);
}

template <typename T>
double TrainingModel<T>::run(const PackedBatch& batch, double loss_scale, bool backward, ThreadPool& pool) {
  const auto& s = base_.spec();
  const int64_t n = int64_t(batch.tokens.size()), H = s.hidden, V = s.vocab_size;
  if (n == 0) return 0.0;
  if (batch.targets.size() != batch.tokens.size() || batch.starts.empty() || batch.starts[0] != 0)
    throw Error("training batch: tokens, targets and sequence starts do not agree");
  if (training_) ++counter_;  // only training passes advance the dropout stream (see training_batches())
  seg_ = batch.starts;
  seg_.push_back(n);
  // Rotary tables: position restarts at every sequence.
  const int64_t half = int64_t(base_.inv_freq.size());
  cos_.resize(n * half);
  sin_.resize(n * half);
  for (size_t i = 0; i + 1 < seg_.size(); ++i)
    for (int64_t t = seg_[i]; t < seg_[i + 1]; ++t) {
      if (t - seg_[i] >= s.context_length) throw Error(fmt::format("a training sequence is longer than the context ({})", s.context_length));
      kernels::rope_cos_sin(t - seg_[i], base_.inv_freq.data(), half, cos_.data() + t * half, sin_.data() + t * half);
    }

  const int L = s.n_layers;
  const bool keep_all = backward && !recompute_;
  std::vector<LayerActs> acts(keep_all ? L : 1);
  std::vector<std::vector<T>> inputs(backward && recompute_ ? L : 0);  // [L][n, H] layer inputs
  std::vector<T> x(n * H), next(n * H);
  std::vector<float> row(H);
  for (int64_t t = 0; t < n; ++t) {
    if (batch.tokens[t] < 0 || batch.tokens[t] >= V) throw Error(fmt::format("token id {} is outside the vocabulary", batch.tokens[t]));
    kernels::dequantize_weight_row(base_.embedding, batch.tokens[t], row.data());
    for (int64_t i = 0; i < H; ++i) x[t * H + i] = T(row[i]);
  }
  for (int l = 0; l < L; ++l) {
    LayerActs& a = acts[keep_all ? l : 0];
    if (!inputs.empty()) inputs[l] = x;
    a.x = x;
    layer_forward(l, a, next.data(), pool);
    std::swap(x, next);
  }
  act_bytes_ = 0;
  for (const auto& a : acts)
    for (const auto* v : {&a.x, &a.h1, &a.q, &a.k, &a.v, &a.att, &a.xmid, &a.h2, &a.gate, &a.up, &a.act}) act_bytes_ += v->size() * sizeof(T);
  for (const auto& v : inputs) act_bytes_ += v.size() * sizeof(T);

  // Final norm, then logits only for rows that have a target (prompt rows are masked), in
  // chunks so [rows, vocab] never exists for the whole batch.
  std::vector<T> hf(n * H), mf(n), rf(n);
  norm_fwd(base_.fnw, base_.fnb, x.data(), hf.data(), mf.data(), rf.data(), n);
  std::vector<int64_t> rows;
  for (int64_t t = 0; t < n; ++t)
    if (batch.targets[t] >= 0) {
      if (batch.targets[t] >= V) throw Error(fmt::format("target id {} is outside the vocabulary", batch.targets[t]));
      rows.push_back(t);
    }
  std::vector<T> dhf(backward ? n * H : 0, T(0));
  double loss = 0;
  const int64_t chunk = 64;
  std::vector<T> hc(chunk * H), logits(chunk * V), dhc(chunk * H);
  std::vector<int32_t> tc(chunk);
  for (size_t c0 = 0; c0 < rows.size(); c0 += chunk) {
    const int64_t m = std::min<int64_t>(chunk, int64_t(rows.size() - c0));
    for (int64_t j = 0; j < m; ++j) {
      std::copy(hf.data() + rows[c0 + j] * H, hf.data() + (rows[c0 + j] + 1) * H, hc.data() + j * H);
      tc[j] = batch.targets[rows[c0 + j]];
    }
    if constexpr (std::is_same_v<T, float>) kernels::matmul(f32_view(base_.output.w, V, H), hc.data(), logits.data(), m, pool);
    else matmul_nt(hc.data(), base_.output.w.data(), logits.data(), m, H, V, &pool);
    loss += cross_entropy_forward_backward(logits.data(), tc.data(), m, V, loss_scale, &pool);
    if (!backward) continue;
    if constexpr (std::is_same_v<T, float>) {
      kernels::matmul(f32_view(base_.output.wt, H, V), logits.data(), dhc.data(), m, pool);
    } else {
      std::fill(dhc.begin(), dhc.end(), T(0));
      for (int64_t j = 0; j < m; ++j)
        for (int64_t v = 0; v < V; ++v)
          for (int64_t i = 0; i < H; ++i) dhc[j * H + i] += logits[j * V + v] * T(base_.output.w[v * H + i]);
    }
    for (int64_t j = 0; j < m; ++j)
      for (int64_t i = 0; i < H; ++i) dhf[rows[c0 + j] * H + i] += dhc[j * H + i];
  }
  if (!backward) return loss;

  std::vector<T> d(n * H, T(0)), dprev(n * H);
  norm_bwd(base_.fnw, x.data(), mf.data(), rf.data(), dhf.data(), d.data(), n);
  for (int l = L - 1; l >= 0; --l) {
    LayerActs& a = acts[keep_all ? l : 0];
    if (!keep_all) {  // gradient checkpointing: run the layer again from its saved input
      a.x = inputs[l];
      layer_forward(l, a, next.data(), pool);
    }
    layer_backward(l, a, d.data(), dprev.data(), pool);
    std::swap(d, dprev);
  }
  return loss;
}

template class TrainingModel<float>;
template class TrainingModel<double>;

}  // namespace billion::train
