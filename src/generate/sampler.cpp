#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

namespace billion {

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

Sampler::Sampler(SamplingOptions options) : options_(options), rng_(options.seed) {}

double Sampler::uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

void Sampler::probabilities(std::span<const float> logits, std::span<const int32_t> history, std::vector<float>& probs) const {
  const size_t n = logits.size();
  std::vector<float> z(logits.begin(), logits.end());
  if (options_.repetition_penalty != 1.0f || options_.presence_penalty != 0.0f) {
    std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (int32_t id : seen) {
      if (id < 0 || static_cast<size_t>(id) >= n) continue;
      float& v = z[id];
      if (options_.repetition_penalty != 1.0f) v = v > 0 ? v / options_.repetition_penalty : v * options_.repetition_penalty;
      v -= options_.presence_penalty;
    }
  }
  probs.assign(n, 0.0f);
  if (greedy()) {
    probs[argmax(z)] = 1.0f;
    return;
  }
  for (auto& v : z) v /= options_.temperature;
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  size_t keep = n;
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < n) {
    keep = options_.top_k;
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), [&](int32_t a, int32_t b) { return z[a] > z[b]; });
  } else {
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return z[a] > z[b]; });
  }
  // Softmax over the kept candidates (sorted, best first), in double for stable sums.
  std::vector<double> p(keep);
  double max = z[order[0]], sum = 0;
  for (size_t k = 0; k < keep; ++k) sum += p[k] = std::exp(double(z[order[k]]) - max);
  for (auto& x : p) x /= sum;
  if (options_.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p (at least one token)
    double cumulative = 0;
    size_t cut = keep;
    for (size_t k = 0; k < keep; ++k) {
      cumulative += p[k];
      if (cumulative >= options_.top_p) {
        cut = k + 1;
        break;
      }
    }
    keep = cut;
  }
  if (options_.min_p > 0.0f) {  // drop tokens below min_p × the best probability
    double threshold = options_.min_p * p[0];
    size_t cut = 1;
    while (cut < keep && p[cut] >= threshold) ++cut;
    keep = cut;
  }
  double kept = 0;
  for (size_t k = 0; k < keep; ++k) kept += p[k];
  for (size_t k = 0; k < keep; ++k) probs[order[k]] = static_cast<float>(p[k] / kept);
}

int32_t Sampler::draw(const std::vector<float>& probs) {
  double r = uniform(), cumulative = 0;
  int32_t last = 0;
  for (size_t k = 0; k < probs.size(); ++k) {
    if (probs[k] <= 0) continue;
    cumulative += probs[k];
    last = static_cast<int32_t>(k);
    if (r < cumulative) return last;
  }
  return last;  // rounding left r above the total: the last candidate
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  if (greedy() && options_.repetition_penalty == 1.0f && options_.presence_penalty == 0.0f) return argmax(logits);
  std::vector<float> probs;
  probabilities(logits, history, probs);
  if (greedy()) return argmax(probs);
  return draw(probs);
}

}  // namespace billion
