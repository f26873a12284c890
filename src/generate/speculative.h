// Speculative decoding (Leviathan et al. 2023; Chen et al. 2023): a cheap drafter proposes K
// tokens, the target model scores all K + 1 positions in one forward pass, and a verification
// rule keeps a prefix of the draft so the output is exactly what the target alone would produce
// (token for token when greedy; the same distribution when sampling). Drafters: another model
// with the same vocabulary (ModelDrafter) or n-gram prompt lookup (generate/lookup_draft.h).
// docs/SPECULATIVE.md describes the loop, the statistics and the adaptive-K rule.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "generate/generator.h"
#include "generate/sampler.h"
#include "model/model.h"

namespace billion {

// Throws billion::Error naming the first difference when the draft's tokenizer cannot stand in
// for the target's: as llama.cpp's common_speculative_are_compatible, the vocabulary kind, the
// bos/eos ids and add_bos/add_eos must agree, the sizes may differ by at most 128 and every token
// text from id 5 up to the smaller size must be equal.
void check_tokenizers_compatible(const Tokenizer& draft, const Tokenizer& target, const std::string& draft_name,
                                 const std::string& target_name);
constexpr int kMaxVocabSizeDifference = 128;
constexpr int kMaxDraftTokens = 32;  // K above this is refused as a mistake

// A source of draft tokens. `context` is the prompt followed by every token accepted so far.
class Drafter {
 public:
  virtual ~Drafter() = default;
  virtual std::string name() const = 0;
  // Longest context the drafter can hold (its KV cache), or a very large number.
  virtual int capacity() const = 0;
  // Called once per prompt before the first proposal (a model drafter prefills it here so the
  // prompt's cost is not counted as drafting).
  virtual void begin(const std::vector<int32_t>& prompt) = 0;
  // Proposes up to `k` tokens continuing `context` (fewer, even none, is allowed). For a drafter
  // with q_width() > 0, `q` receives one distribution of q_width() floats per proposed token,
  // processed by the same sampler settings as the target's ([n_proposed, q_width]); a
  // deterministic drafter (q_width() == 0) leaves q empty: its q is one-hot on each token.
  virtual void propose(const std::vector<int32_t>& context, int k, std::vector<int32_t>& tokens, std::vector<float>& q) = 0;
  virtual int q_width() const = 0;
};

// Drafts with a smaller model: greedy when the sampling settings are greedy, otherwise drawn from
// q with its own generator. The KV cache is re-synchronised with the accepted context at each
// proposal (the rejected suffix is truncated, the accepted tokens it has not seen evaluated).
class ModelDrafter : public Drafter {
 public:
  ModelDrafter(Model& model, int capacity, KVType kv_type, const SamplingOptions& sampling, ThreadPool& pool);
  std::string name() const override { return "model"; }
  int capacity() const override { return cache_.capacity(); }
  void begin(const std::vector<int32_t>& prompt) override;
  void propose(const std::vector<int32_t>& context, int k, std::vector<int32_t>& tokens, std::vector<float>& q) override;
  int q_width() const override { return model_.spec().vocab_size; }

 private:
  void sync(const std::vector<int32_t>& context);  // cache = context, logits_ = next-token logits

  Model& model_;
  KVCache cache_;
  Sampler sampler_;
  ThreadPool& pool_;
  std::vector<int32_t> cached_;  // the tokens whose keys/values are in cache_
  std::vector<float> logits_;    // [vocab] next-token logits after cached_
};

// The sampled-verification rule, swappable so a test can show that a wrong rule changes the
// output distribution. accept: keep a draft token whose target probability is p and draft
// probability q, given a uniform r in [0, 1). residual: the distribution to draw the replacement
// from after a rejection (rows of the same width; `out` normalised).
struct AcceptanceRule {
  bool (*accept)(double p, double q, double r);
  void (*residual)(std::span<const float> p, std::span<const float> q, std::vector<float>& out);
};
// min(1, p/q) acceptance and norm(max(0, p − q)) resampling; when p − q has no positive mass
// (possible only through rounding) the replacement is drawn from p.
const AcceptanceRule& exact_acceptance_rule();

struct VerifyOutcome {
  int accepted = 0;  // draft tokens kept
  int32_t next = 0;  // the target's token after them (replacement or bonus)
};

// Sampled verification of one draft, a pure function of its inputs and `rng`'s draws.
// draft: [k] tokens; q: [k] rows (q_width floats) or empty for a one-hot draft; p: [k + 1] rows
// of the target's processed distribution. Draws: one uniform per examined draft token, then one
// draw for the replacement or bonus token.
VerifyOutcome verify_sampled(std::span<const int32_t> draft, std::span<const float> q, int q_width, std::span<const float> p,
                             int p_width, Sampler& rng, const AcceptanceRule& rule = exact_acceptance_rule());

struct SpeculativeOptions {
  int k = 4;              // draft tokens per target pass (1..kMaxDraftTokens)
  bool adaptive = false;  // change K from recent acceptance (see adapt_k)
  int k_max = 0;          // adaptive upper bound; 0 = min(2·k, kMaxDraftTokens)
  int max_new_tokens = 256;
  SamplingOptions sampling;
  bool stop_at_eos = true;
  const AcceptanceRule* rule = nullptr;  // null = exact_acceptance_rule()
};

// The adaptive rule: K + 1 when the whole proposal of K tokens was accepted, K − 1 when less than
// half of a proposal was, else unchanged; kept in [1, k_max]. Short proposals (a lookup drafter
// that found no long match) say nothing about K and leave it alone.
int adapt_k(int k, int proposed, int accepted, int k_max);

struct SpeculativeStats {
  int passes = 0;     // target forward passes after the prompt (verification rounds)
  int drafted = 0;    // draft tokens proposed and verified
  int accepted = 0;   // of those, accepted
  int generated = 0;  // tokens emitted
  int k_sum = 0;      // sum of K over rounds (mean K under --adaptive)
  std::vector<int> drafted_at, accepted_at;  // by draft position 0..K-1
  double prefill_seconds = 0;  // the prompt through target and drafter
  double draft_seconds = 0, target_seconds = 0, total_seconds = 0;

  double acceptance_rate() const { return drafted > 0 ? double(accepted) / drafted : 0; }
  double accepted_per_pass() const { return passes > 0 ? double(accepted) / passes : 0; }
  double tokens_per_pass() const { return passes > 0 ? double(generated) / passes : 0; }
  double mean_k() const { return passes > 0 ? double(k_sum) / passes : 0; }
  // Generated tokens per second after the prompt (the phase speculation speeds up).
  double decode_tokens_per_second() const {
    double t = total_seconds - prefill_seconds;
    return t > 0 ? generated / t : 0;
  }
  void add(const SpeculativeStats& other);
};

struct SpeculativeResult {
  std::vector<int32_t> tokens;  // generated ids (a final stop id included, as generate())
  std::string text;             // decoded, without the stop id's text
  std::string stop_reason;      // "eos", "length", "context"
  SpeculativeStats stats;
};

// Generates a continuation of `prompt` with the target model, drafting with `drafter`.
// `cache` is the target's KV cache (cleared first). Throws billion::Error for an empty prompt, a
// prompt that does not fit the target's or the drafter's context, or K outside 1..32.
SpeculativeResult speculative_generate(Model& target, KVCache& cache, Drafter& drafter, const std::vector<int32_t>& prompt,
                                       const SpeculativeOptions& options, ThreadPool& pool, const TextCallback& on_text = {});

}  // namespace billion
