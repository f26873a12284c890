// Turning logits into the next token: greedy, or sampling with temperature, top-k, top-p, min-p,
// repetition and presence penalties, from a seeded generator (same seed, same tokens).
// Order as transformers applies its logits processors: penalties, temperature, top-k, top-p,
// min-p, then a draw from the softmax.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace billion {

struct SamplingOptions {
  float temperature = 0.0f;  // 0 = greedy (argmax)
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  float repetition_penalty = 1.0f;  // 1 = off (HF: divide positive logits, multiply negative)
  float presence_penalty = 0.0f;    // 0 = off (subtracted once per distinct seen token)
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplingOptions options);
  const SamplingOptions& options() const { return options_; }
  bool greedy() const { return options_.temperature <= 0.0f; }

  // `history`: the tokens seen so far (prompt and generated) for the penalties.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  // The distribution sample() draws from, after every processor (for speculative decoding's
  // p/q ratios). Greedy: all mass on the argmax.
  void probabilities(std::span<const float> logits, std::span<const int32_t> history, std::vector<float>& probs) const;
  // A uniform draw in [0, 1) from this sampler's generator.
  double uniform();
  // Draws an index from a normalised distribution with this sampler's generator.
  int32_t draw(const std::vector<float>& probs);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

int32_t argmax(std::span<const float> logits);

}  // namespace billion
