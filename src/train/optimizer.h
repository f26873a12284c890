// AdamW (torch.optim.AdamW semantics), the learning-rate schedules of transformers'
// get_{linear,cosine}_schedule_with_warmup, and global gradient-norm clipping
// (torch.nn.utils.clip_grad_norm_), over the LoRA parameters.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/training_forward.h"

namespace billion::train {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;  // torch defaults; no decay unless asked
};

class AdamW {
 public:
  AdamW(const std::vector<LoraParams<float>>& params, AdamWConfig config);
  // One update with learning rate lr from the accumulated gradients.
  void step(std::vector<LoraParams<float>>& params, double lr);
  int64_t steps() const { return t_; }
  // State for checkpoints: first and second moments of every tensor, in parameter order.
  std::vector<std::vector<float>>& moments() { return m_; }
  std::vector<std::vector<float>>& second_moments() { return v_; }
  void set_steps(int64_t t) { t_ = t; }

 private:
  AdamWConfig c_;
  int64_t t_ = 0;
  std::vector<std::vector<float>> m_, v_;  // [2 × params]: a then b of each module
};

enum class ScheduleKind { Linear, Cosine, Constant };
ScheduleKind parse_schedule(const std::string& name);
// Multiplier of the peak lr before optimizer step `step` (0-based) of `total`.
double lr_multiplier(ScheduleKind kind, int64_t step, int64_t total, int64_t warmup);

// Scales the gradients so their global L2 norm is at most max_norm (no-op when max_norm <= 0);
// returns the norm before clipping.
double clip_grad_norm(std::vector<LoraParams<float>>& params, double max_norm);

}  // namespace billion::train
