// The training forward pass: the same transformer as model/decoder (Llama, GPT-NeoX, StableLM,
// driven by ArchitectureSpec), but keeping the activations the backward pass needs, and the
// backward pass itself down the residual stream with gradients for the LoRA adapters only.
//
// The frozen base is dequantized once to F32 (FrozenBase), with a transposed copy of every matrix
// so the input gradient dx = dy · W is one more call to the optimised kernels::matmul. A batch is
// several sequences packed end to end (one matmul over all their tokens); attention and rotary
// positions restart at each sequence start. With `recompute`, only each layer's input is kept
// and the layer is run again during the backward pass (gradient checkpointing): memory then is
// one layer's activations plus n × hidden per layer.
//
// TrainingModel is a template so the gradient tests can run the whole model in double.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "model/architecture.h"
#include "model/weights.h"
#include "train/lora.h"

namespace billion::train {

struct FrozenLinear {
  int64_t in = 0, out = 0;
  std::vector<float> w;     // [out, in]
  std::vector<float> wt;    // [in, out]
  std::vector<float> bias;  // [out] or empty
  bool present() const { return out > 0; }
};

struct FrozenLayer {
  std::vector<float> n1w, n1b, n2w, n2b;  // norms; n2w empty when the MLP shares norm 1
  std::array<FrozenLinear, kProjCount> lin;
};

// The base model's weights as F32 matrices (plus transposes). Keeps a copy of the embedding's
// WeightView: the ModelWeights it came from must outlive this.
class FrozenBase {
 public:
  FrozenBase(const ArchitectureSpec& spec, const ModelWeights& weights, ThreadPool& pool);
  const ArchitectureSpec& spec() const { return spec_; }
  FusedQkvLayout fused() const { return fused_; }
  uint64_t bytes() const { return bytes_; }

  ArchitectureSpec spec_;
  FusedQkvLayout fused_ = FusedQkvLayout::None;
  kernels::WeightView embedding;  // [vocab, hidden], any type
  std::vector<float> fnw, fnb;     // final norm
  FrozenLinear output;             // [vocab, hidden]
  std::vector<FrozenLayer> layers;
  std::vector<float> inv_freq;     // [rotary/2], as model/decoder computes it
  uint64_t bytes_ = 0;
};

// Packed sequences: tokens and next-token targets (-100 = no loss) of the same length;
// starts = first index of each sequence (starts[0] == 0).
struct PackedBatch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> targets;
  std::vector<int64_t> starts;
};

template <typename T>
struct LoraParams {
  int layer = 0;
  Proj proj = Proj::Q;
  int64_t in = 0, out = 0, r = 0;
  std::vector<T> a, b;    // [r, in], [out, r]
  std::vector<T> ga, gb;  // gradients, same shapes
};

template <typename T>
class TrainingModel {
 public:
  TrainingModel(const FrozenBase& base, const LoraAdapterSet& lora, bool recompute, uint64_t seed);

  // Forward over the batch; returns the sum of the token cross-entropies. With backward, adds
  // loss_scale × d(sum)/d(params) to the gradients (loss_scale = 1 / target tokens of the step).
  double run(const PackedBatch& batch, double loss_scale, bool backward, ThreadPool& pool);

  void set_training(bool on) { training_ = on; }  // dropout only while training
  // Training passes run so far (evaluation passes do not count). Dropout masks are drawn from
  // (seed, this count, layer, projection), so a run resumed from a checkpoint sets it to the
  // number of micro-batches already trained and continues the uninterrupted run's masks.
  uint64_t training_batches() const { return counter_; }
  void set_training_batches(uint64_t n) { counter_ = n; }
  void zero_grad();
  std::vector<LoraParams<T>>& params() { return params_; }
  const std::vector<LoraParams<T>>& params() const { return params_; }
  T scale() const { return scale_; }
  // Copies the current adapter values into `set` (same module order).
  void export_to(LoraAdapterSet& set) const;
  // Bytes of activations the last run() kept.
  uint64_t activation_bytes() const { return act_bytes_; }

 private:
  struct LayerActs {
    std::vector<T> x, h1, m1, r1, q, k, v, att, lse, xmid, h2, m2, r2, gate, up, act;
    std::array<std::vector<T>, kProjCount> lora_x, lora_u;  // dropped input, A x
  };
  void norm_fwd(const std::vector<float>& w, const std::vector<float>& b, const T* x, T* y, T* m, T* r, int64_t n) const;
  void norm_bwd(const std::vector<float>& w, const T* x, const T* m, const T* r, const T* dy, T* dx, int64_t n) const;
  void project(int layer, Proj p, const T* x, T* y, int64_t n, LayerActs& a, ThreadPool& pool);
  void project_back(int layer, Proj p, const T* x, const T* dy, T* dx, int64_t n, LayerActs& a, ThreadPool& pool);
  void layer_forward(int layer, LayerActs& a, T* out, ThreadPool& pool);
  void layer_backward(int layer, LayerActs& a, const T* dout, T* dx, ThreadPool& pool);

  const FrozenBase& base_;
  std::vector<LoraParams<T>> params_;
  std::vector<std::array<int, kProjCount>> slot_;  // [layer][proj] → params_ index or -1
  T scale_ = 1;
  float dropout_ = 0;
  bool recompute_ = false, training_ = true;
  uint64_t seed_ = 0, counter_ = 0;
  uint64_t act_bytes_ = 0;
  // Per batch: segments, rotary tables [n, rot/2].
  std::vector<int64_t> seg_;
  std::vector<float> cos_, sin_;
};

extern template class TrainingModel<float>;
extern template class TrainingModel<double>;

}  // namespace billion::train
