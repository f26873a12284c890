// AdamW, schedules and clipping (see optimizer.h). The arithmetic follows torch's
// single-tensor AdamW: decoupled decay p *= 1 - lr·wd, then
// p -= (lr / (1 - β1^t)) · m / (sqrt(v) / sqrt(1 - β2^t) + eps).
#include "train/optimizer.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"

namespace billion::train {

AdamW::AdamW(const std::vector<LoraParams<float>>& params, AdamWConfig config) : c_(config) {
  for (const auto& p : params) {
    m_.emplace_back(p.a.size(), 0.0f);
    v_.emplace_back(p.a.size(), 0.0f);
    m_.emplace_back(p.b.size(), 0.0f);
    v_.emplace_back(p.b.size(), 0.0f);
  }
}

void AdamW::step(std::vector<LoraParams<float>>& params, double lr) {
  ++t_;
  const double bc1 = 1 - std::pow(c_.beta1, double(t_)), bc2 = 1 - std::pow(c_.beta2, double(t_));
  const double step_size = lr / bc1, bc2_sqrt = std::sqrt(bc2);
  for (size_t i = 0; i < params.size(); ++i)
    for (int which = 0; which < 2; ++which) {
      auto& w = which == 0 ? params[i].a : params[i].b;
      const auto& g = which == 0 ? params[i].ga : params[i].gb;
      auto& m = m_[2 * i + which];
      auto& v = v_[2 * i + which];
      for (size_t j = 0; j < w.size(); ++j) {
        if (c_.weight_decay != 0) w[j] = float(w[j] * (1 - lr * c_.weight_decay));
        m[j] = float(c_.beta1 * m[j] + (1 - c_.beta1) * g[j]);
        v[j] = float(c_.beta2 * v[j] + (1 - c_.beta2) * double(g[j]) * g[j]);
        const double denom = std::sqrt(double(v[j])) / bc2_sqrt + c_.eps;
        w[j] = float(w[j] - step_size * m[j] / denom);
      }
    }
}

ScheduleKind parse_schedule(const std::string& name) {
  if (name == "linear") return ScheduleKind::Linear;
  if (name == "cosine") return ScheduleKind::Cosine;
  if (name == "constant") return ScheduleKind::Constant;
  throw Error(fmt::format("--schedule: unknown schedule {} (linear, cosine or constant)", name));
}

double lr_multiplier(ScheduleKind kind, int64_t step, int64_t total, int64_t warmup) {
  if (step < warmup) return double(step) / double(std::max<int64_t>(1, warmup));
  if (kind == ScheduleKind::Constant) return 1.0;
  const double progress = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
  if (kind == ScheduleKind::Linear) return std::max(0.0, double(total - step) / double(std::max<int64_t>(1, total - warmup)));
  return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));  // num_cycles 0.5
}

double clip_grad_norm(std::vector<LoraParams<float>>& params, double max_norm) {
  double ss = 0;
  for (const auto& p : params) {
    for (float g : p.ga) ss += double(g) * g;
    for (float g : p.gb) ss += double(g) * g;
  }
  const double norm = std::sqrt(ss);
  if (max_norm > 0) {
    const double coef = max_norm / (norm + 1e-6);  // torch: clamp(max_norm / (norm + 1e-6), max=1)
    if (coef < 1)
      for (auto& p : params) {
        for (float& g : p.ga) g = float(g * coef);
        for (float& g : p.gb) g = float(g * coef);
      }
  }
  return norm;
}

}  // namespace billion::train
