// Prompt-lookup drafting (n-gram matching, as llama.cpp's lookup and HF's prompt_lookup_num_tokens):
// no draft model; the last n tokens of the context are searched for earlier in the prompt and the
// text so far, and the tokens that followed the most recent match are proposed. Cheap and very
// effective when the output repeats the input (summaries, code edits, extraction).
#pragma once
#include <climits>

#include "generate/speculative.h"

namespace billion {

class LookupDrafter : public Drafter {
 public:
  // Tries n-grams of max_ngram tokens down to min_ngram; the longest that matches wins.
  explicit LookupDrafter(int max_ngram = 3, int min_ngram = 1);
  std::string name() const override { return "lookup"; }
  int capacity() const override { return INT_MAX / 2; }
  void begin(const std::vector<int32_t>&) override {}
  void propose(const std::vector<int32_t>& context, int k, std::vector<int32_t>& tokens, std::vector<float>& q) override;
  int q_width() const override { return 0; }  // deterministic: q is one-hot

 private:
  int max_ngram_, min_ngram_;
};

}  // namespace billion
