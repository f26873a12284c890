// forward(): embeddings → N × block → final norm → logits. A block is
//   sequential (Llama, StableLM-2):  x += attn(norm1(x));  x += mlp(norm2(x))
//   parallel (GPT-NeoX):             x += attn(norm1(x)) + mlp(norm2(x))
//   parallel, one norm (StableLM):   x += attn(norm1(x)) + mlp(norm1(x))
#include "model/decoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "kernels/quant.h"

namespace billion {
namespace {

void grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// Attention of one query token over F32 cache rows (the fidelity path; F16 uses the kernel).
void attention_f32(const float* q, int n_q, int head_dim, const uint8_t* k_base, const uint8_t* v_base, size_t row_bytes,
                   int n_pos, float scale, float* out, float* scores, const kernels::KernelTable& kt) {
  for (int h = 0; h < n_q; ++h) {
    const float* qh = q + int64_t(h) * head_dim;
    for (int p = 0; p < n_pos; ++p) {
      const float* kp = reinterpret_cast<const float*>(k_base + p * row_bytes);
      float dot = 0;
      for (int d = 0; d < head_dim; ++d) dot += qh[d] * kp[d];
      scores[p] = dot * scale;
    }
    kt.softmax(scores, n_pos);
    float* oh = out + int64_t(h) * head_dim;
    std::fill(oh, oh + head_dim, 0.0f);
    for (int p = 0; p < n_pos; ++p) {
      const float* vp = reinterpret_cast<const float*>(v_base + p * row_bytes);
      for (int d = 0; d < head_dim; ++d) oh[d] += scores[p] * vp[d];
    }
  }
}

}  // namespace

Decoder::Decoder(ArchitectureSpec spec, ModelWeights weights) : spec_(std::move(spec)), weights_(std::move(weights)) {
  // transformers builds inv_freq in float32: 1 / base^(arange(0, dim, 2) / dim), then applies
  // llama3 scaling; GGUF ships the scaling as divisors (rope_freqs) on the plain frequencies.
  auto inv = spec_.rope_inverse_frequencies();
  inv_freq_.resize(inv.size());
  for (size_t i = 0; i < inv.size(); ++i) {
    float base = static_cast<float>(1.0 / std::pow(spec_.rope_theta, static_cast<double>(static_cast<float>(2 * i) / spec_.rotary_dims)));
    inv_freq_[i] = spec_.llama3_scaling ? static_cast<float>(inv[i]) : base;
    if (!weights_.rope_freq_divisors.empty()) inv_freq_[i] = base / weights_.rope_freq_divisors[i];
  }
  // ggml's tables (F16 cache): θ = powf(base, -2/n_rot); scaling as per-pair divisors.
  rope_theta_scale_ = std::pow(static_cast<float>(spec_.rope_theta), -2.0f / static_cast<float>(spec_.rotary_dims));
  if (!weights_.rope_freq_divisors.empty()) {
    rope_factors_ = weights_.rope_freq_divisors;
  } else if (spec_.llama3_scaling) {
    rope_factors_.resize(inv.size());
    for (size_t i = 0; i < inv.size(); ++i)
      rope_factors_[i] = static_cast<float>(std::pow(spec_.rope_theta, -2.0 * double(i) / spec_.rotary_dims) / inv[i]);
  }
}

KVCache Decoder::make_cache(int capacity, KVType type) const {
  if (capacity <= 0 || capacity > spec_.context_length) capacity = spec_.context_length;
  const int kv_dim = spec_.n_kv_heads * spec_.head_dim;
  if (device_) return KVCache(spec_.n_layers, capacity, kv_dim, type, device_->make_kv_storage(capacity, type));
  return KVCache(spec_.n_layers, capacity, kv_dim, type);
}

void Decoder::project(const Linear& l, const float* x, float* y, int n, ThreadPool& pool) {
  kernels::matmul(l.weight, x, y, n, pool);
  add_bias_and_lora(l, x, y, n, pool);
}

void Decoder::project_many(std::span<const Linear* const> ls, std::span<float* const> ys, const float* x, int n, ThreadPool& pool) {
  // The bias and LoRA terms only read x and add to their own output, so applying them after
  // all the matmuls gives what project() one at a time gives.
  kernels::WeightView views[4];
  if (ls.size() > std::size(views)) fail("Decoder::project_many", "{} projections, at most {}", ls.size(), std::size(views));
  for (size_t i = 0; i < ls.size(); ++i) views[i] = ls[i]->weight;
  kernels::matmul_many(std::span<const kernels::WeightView>(views, ls.size()), x, ys, n, pool);
  for (size_t i = 0; i < ls.size(); ++i) add_bias_and_lora(*ls[i], x, ys[i], n, pool);
}

void Decoder::add_bias_and_lora(const Linear& l, const float* x, float* y, int n, ThreadPool& pool) {
  if (!l.bias.empty()) {
    const auto& kt = kernels::active_kernels();
    for (int t = 0; t < n; ++t) kt.add(y + int64_t(t) * l.weight.rows, l.bias.data(), y + int64_t(t) * l.weight.rows, l.weight.rows);
  }
  if (l.lora) {  // LoRA: y += scale * B (A x), u = A x [rank]; small next to the base matmul
    const LoraAdapter& ad = *l.lora;
    const int64_t in = l.weight.cols, out = l.weight.rows, r = ad.rank;
    pool.parallel_for(n, [&](int64_t t0, int64_t t1) {
      std::vector<float> u(r);
      for (int64_t t = t0; t < t1; ++t) {
        const float* xt = x + t * in;
        for (int64_t k = 0; k < r; ++k) {
          float s = 0;
          for (int64_t i = 0; i < in; ++i) s += ad.a[k * in + i] * xt[i];
          u[k] = s * ad.scale;
        }
        float* yt = y + t * out;
        for (int64_t o = 0; o < out; ++o) {
          float s = 0;
          for (int64_t k = 0; k < r; ++k) s += ad.b[o * r + k] * u[k];
          yt[o] += s;
        }
      }
    });
  }
}

void Decoder::attention(int layer, int n, int start, KVCache& cache, kernels::AttentionOrder order, ThreadPool& pool) {
  const auto& kt = kernels::active_kernels();
  const int hd = spec_.head_dim, n_kv = spec_.n_kv_heads, group = spec_.n_heads / spec_.n_kv_heads;
  const int q_dim = spec_.n_heads * hd, kv_dim = n_kv * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const size_t row_bytes = size_t(kv_dim) * cache.element_bytes();
  // One work item per (token, KV head): the query heads sharing that KV head (GQA) in one call,
  // so the kernel reads each cache row once for all of them, over positions [0, start + t], the
  // token's causal window. When that leaves too few items to split evenly (a decode step of
  // SmolLM2, 3 KV heads on 2 threads, ran one thread idle a third of the attention time), one
  // item per (token, query head) instead. Heads are independent and the kernel's arithmetic per
  // head does not depend on how many it gets, so the split changes no value.
  const int n_heads = spec_.n_heads;
  const int64_t threads = pool.size();
  const int64_t kv_items = int64_t(n) * n_kv;
  const bool per_kv_head = group > 1 && (kv_items % threads == 0 || kv_items >= 8 * threads);
  const int heads_per_item = per_kv_head ? group : 1;
  const int items_per_token = n_heads / heads_per_item;
  pool.parallel_for(int64_t(n) * items_per_token, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    if (scores.size() < size_t(start + n)) scores.resize(start + n);
    for (int64_t item = begin; item < end; ++item) {
      const int t = static_cast<int>(item / items_per_token);
      const int h = static_cast<int>(item % items_per_token) * heads_per_item, g = h / group;
      const int n_pos = start + t + 1;
      const float* q = q_.data() + int64_t(t) * q_dim + int64_t(h) * hd;
      float* out = att_.data() + int64_t(t) * q_dim + int64_t(h) * hd;
      const uint8_t* k0 = cache.key(layer, 0) + size_t(g) * hd * cache.element_bytes();
      const uint8_t* v0 = cache.value(layer, 0) + size_t(g) * hd * cache.element_bytes();
      if (cache.type() == KVType::F16) {
        kt.attention_f16(q, hd, heads_per_item, hd, reinterpret_cast<const uint16_t*>(k0), reinterpret_cast<const uint16_t*>(v0),
                         kv_dim, n_pos, scale, out, hd, scores.data(), order);
      } else {
        attention_f32(q, heads_per_item, hd, k0, v0, row_bytes, n_pos, scale, out, scores.data(), kt);
      }
    }
  });
}

void Decoder::forward(std::span<const int32_t> tokens, KVCache& cache, std::vector<float>& logits, LogitsFor which, ThreadPool& pool) {
  const int n = static_cast<int>(tokens.size());
  const int start = cache.size();
  if (n == 0) throw Error("forward: no tokens to evaluate");
  if (start + n > cache.capacity())
    throw Error(fmt::format("the sequence needs {} positions but the context holds {} ({} already used)", start + n, cache.capacity(), start));
  for (int32_t id : tokens)
    if (id < 0 || id >= spec_.vocab_size) throw Error(fmt::format("token id {} is outside the vocabulary (0..{})", id, spec_.vocab_size - 1));
  if (bool(device_) != bool(cache.device_storage()))
    throw Error(device_ ? "forward: this KV cache lives on the host but the model runs on " + device_->device_name() + "; make the cache after moving the model"
                        : std::string("forward: this KV cache lives on a device but the model runs on the CPU"));
  // llama.cpp sums a one-token step's attention in another order than a batch's (kernels.h,
  // AttentionOrder); doing the same makes our logits its logits, bit for bit. A batch-invariant
  // cache always uses the batch order, so any split of a sequence gives the same bits.
  const auto order = (n == 1 && !cache.batch_invariant()) ? kernels::AttentionOrder::Vec : kernels::AttentionOrder::Tiled;
  if (which != LogitsFor::None) logits.resize(size_t(which == LogitsFor::All ? n : 1) * spec_.vocab_size);
  for (int done = 0; done < n;) {
    int take = std::min(n - done, max_micro_batch_);
    if (n - done - take == 1) --take;  // never leave a one-token tail: it would sum in the other order
    const bool last = done + take == n;
    const LogitsFor part = which == LogitsFor::All ? LogitsFor::All : (last ? which : LogitsFor::None);
    float* out = which == LogitsFor::All ? logits.data() + size_t(done) * spec_.vocab_size : logits.data();
    if (device_) device_->forward_batch(tokens.subspan(done, take), cache, out, part);
    else forward_batch(tokens.subspan(done, take), cache, out, part, order, pool);
    done += take;
  }
}

void Decoder::forward_batch(std::span<const int32_t> tokens, KVCache& cache, float* logits, LogitsFor which,
                            kernels::AttentionOrder order, ThreadPool& pool) {
  const int n = static_cast<int>(tokens.size());
  const int start = cache.size();
  const auto& kt = kernels::active_kernels();
  const int64_t H = spec_.hidden, hd = spec_.head_dim, q_dim = int64_t(spec_.n_heads) * hd, kv_dim = int64_t(spec_.n_kv_heads) * hd;
  const int64_t F = spec_.intermediate;
  grow(x_, n * H);  // [n, H] residual stream
  grow(h_, n * H);  // [n, H] normalised input of a sub-block
  grow(q_, n * q_dim);
  grow(k_, n * kv_dim);
  grow(v_, n * kv_dim);
  grow(att_, n * q_dim);
  grow(o_, n * H);
  grow(up_, n * F);
  grow(gate_, n * F);
  grow(mlp_out_, n * H);

  for (int t = 0; t < n; ++t) {
    const auto& e = weights_.token_embedding;
    kernels::dequantize_weight_row(e, tokens[t], x_.data() + t * H);
  }

  auto norm = [&](const std::vector<float>& w, const std::vector<float>& b, const float* in, float* out) {
    for (int t = 0; t < n; ++t) {
      if (spec_.norm == NormKind::RMSNorm) kt.rmsnorm(in + t * H, w.data(), out + t * H, H, spec_.norm_eps);
      else kt.layernorm(in + t * H, w.data(), b.empty() ? nullptr : b.data(), out + t * H, H, spec_.norm_eps);
    }
  };
  const auto rope_style = spec_.rope_style == RopeStyle::HalfSplit ? kernels::RopeStyle::Neox : kernels::RopeStyle::Norm;
  std::vector<float> cos(inv_freq_.size()), sin(inv_freq_.size());
  // An F16 cache is llama.cpp's precision, and with it the decoder follows ggml's arithmetic
  // (kernels::rope_tables_ggml and the rope_ggml kernel; attention, norm and SwiGLU kernels do
  // so always); an F32 cache follows transformers' rotary arithmetic.
  const bool ggml_rope = cache.type() == KVType::F16;

  auto trace = [&](const char* name, int layer, const std::vector<float>& v, int64_t width) {
    if (trace_) trace_(name, layer, v.data(), n, width);
  };
  for (int layer = 0; layer < spec_.n_layers; ++layer) {
    const LayerWeights& L = weights_.layers[layer];
    norm(L.attn_norm_w, L.attn_norm_b, x_.data(), h_.data());
    trace("attn_norm", layer, h_, H);

    // q, k, v [n, q_dim | kv_dim]
    if (L.fused == FusedQkvLayout::None) {
      const Linear* const qkv[] = {&L.q, &L.k, &L.v};
      float* const qkv_out[] = {q_.data(), k_.data(), v_.data()};
      project_many(qkv, qkv_out, h_.data(), n, pool);
    } else {
      const int64_t width = q_dim + 2 * kv_dim;
      grow(qkv_, n * width);
      project(L.qkv, h_.data(), qkv_.data(), n, pool);
      for (int t = 0; t < n; ++t) {
        const float* row = qkv_.data() + t * width;
        if (L.fused == FusedQkvLayout::Blocks) {
          std::memcpy(q_.data() + t * q_dim, row, q_dim * sizeof(float));
          std::memcpy(k_.data() + t * kv_dim, row + q_dim, kv_dim * sizeof(float));
          std::memcpy(v_.data() + t * kv_dim, row + q_dim + kv_dim, kv_dim * sizeof(float));
        } else {  // PerHead: [n_heads, 3, head_dim] (GPT-NeoX has no GQA, so kv_dim == q_dim)
          for (int head = 0; head < spec_.n_heads; ++head) {
            const float* src = row + head * 3 * hd;
            std::memcpy(q_.data() + t * q_dim + head * hd, src, hd * sizeof(float));
            std::memcpy(k_.data() + t * kv_dim + head * hd, src + hd, hd * sizeof(float));
            std::memcpy(v_.data() + t * kv_dim + head * hd, src + 2 * hd, hd * sizeof(float));
          }
        }
      }
    }
    if (!L.q_norm_w.empty()) {  // StableLM qk_layernorm: LayerNorm per head, no bias
      for (int t = 0; t < n; ++t) {
        for (int head = 0; head < spec_.n_heads; ++head)
          kt.layernorm(q_.data() + t * q_dim + head * hd, L.q_norm_w.data() + head * hd, nullptr, q_.data() + t * q_dim + head * hd, hd, spec_.norm_eps);
        for (int head = 0; head < spec_.n_kv_heads; ++head)
          kt.layernorm(k_.data() + t * kv_dim + head * hd, L.k_norm_w.data() + head * hd, nullptr, k_.data() + t * kv_dim + head * hd, hd, spec_.norm_eps);
      }
    }
    for (int t = 0; t < n; ++t) {
      if (ggml_rope) {
        kernels::rope_tables_ggml(start + t, rope_theta_scale_, rope_factors_.empty() ? nullptr : rope_factors_.data(),
                                  static_cast<int64_t>(cos.size()), cos.data(), sin.data());
        kt.rope_ggml(q_.data() + t * q_dim, spec_.n_heads, hd, spec_.rotary_dims, cos.data(), sin.data(), rope_style);
        kt.rope_ggml(k_.data() + t * kv_dim, spec_.n_kv_heads, hd, spec_.rotary_dims, cos.data(), sin.data(), rope_style);
      } else {
        kernels::rope_cos_sin(start + t, inv_freq_.data(), static_cast<int64_t>(inv_freq_.size()), cos.data(), sin.data());
        kt.rope(q_.data() + t * q_dim, spec_.n_heads, hd, spec_.rotary_dims, cos.data(), sin.data(), rope_style);
        kt.rope(k_.data() + t * kv_dim, spec_.n_kv_heads, hd, spec_.rotary_dims, cos.data(), sin.data(), rope_style);
      }
      if (cache.type() == KVType::F16) {
        kt.f32_to_f16(k_.data() + t * kv_dim, reinterpret_cast<uint16_t*>(cache.key(layer, start + t)), kv_dim);
        kt.f32_to_f16(v_.data() + t * kv_dim, reinterpret_cast<uint16_t*>(cache.value(layer, start + t)), kv_dim);
      } else {
        std::memcpy(cache.key(layer, start + t), k_.data() + t * kv_dim, kv_dim * sizeof(float));
        std::memcpy(cache.value(layer, start + t), v_.data() + t * kv_dim, kv_dim * sizeof(float));
      }
    }
    trace("Qcur", layer, q_, q_dim);
    trace("Kcur", layer, k_, kv_dim);
    trace("Vcur", layer, v_, kv_dim);
    attention(layer, n, start, cache, order, pool);
    trace("kqv_out", layer, att_, q_dim);
    project(L.o, att_.data(), o_.data(), n, pool);
    trace("attn_out", layer, o_, H);

    // MLP input: its own norm of the pre-attention stream (parallel), of the updated stream
    // (sequential), or the attention's norm (StableLM parallel).
    const bool parallel = spec_.parallel_residual;
    if (!parallel) {
      kt.add(x_.data(), o_.data(), x_.data(), n * H);
      trace("ffn_inp", layer, x_, H);
      norm(L.ffn_norm_w, L.ffn_norm_b, x_.data(), h_.data());
      trace("ffn_norm", layer, h_, H);
    } else if (!L.ffn_norm_w.empty()) {
      norm(L.ffn_norm_w, L.ffn_norm_b, x_.data(), h_.data());
    }
    if (spec_.mlp == MlpKind::SwiGLU) {
      const Linear* const up_gate[] = {&L.up, &L.gate};
      float* const up_gate_out[] = {up_.data(), gate_.data()};
      project_many(up_gate, up_gate_out, h_.data(), n, pool);
      trace("ffn_gate", layer, gate_, F);
      trace("ffn_up", layer, up_, F);
      kt.silu_mul(gate_.data(), up_.data(), up_.data(), n * F);
      trace("ffn_swiglu", layer, up_, F);
    } else {
      project(L.up, h_.data(), up_.data(), n, pool);
      kt.gelu(up_.data(), up_.data(), n * F);
    }
    project(L.down, up_.data(), mlp_out_.data(), n, pool);
    trace("ffn_out", layer, mlp_out_, H);
    if (parallel) {
      // HF GPT-NeoX: mlp_output + attn_output + hidden_states, summed in that order.
      kt.add(mlp_out_.data(), o_.data(), mlp_out_.data(), n * H);
    }
    kt.add(x_.data(), mlp_out_.data(), x_.data(), n * H);
    trace("l_out", layer, x_, H);
  }
  cache.set_size(start + n);

  if (which == LogitsFor::None) return;
  const int first = which == LogitsFor::All ? 0 : n - 1;
  const int n_out = n - first;
  norm(weights_.final_norm_w, weights_.final_norm_b, x_.data(), h_.data());
  last_hidden_.assign(h_.data() + int64_t(n - 1) * H, h_.data() + int64_t(n) * H);
  project(weights_.output, h_.data() + int64_t(first) * H, logits, n_out, pool);
}

}  // namespace billion
