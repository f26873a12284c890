// Alpaca instruction data for supervised fine-tuning: the JSON list of {instruction, input,
// output}, the Stanford Alpaca prompt template, and loss masking exactly as CONVENTIONS.md §4.4:
// prompt tokens get label -100 (prompt length from tokenising the prompt alone), the target is
// output + EOS directly after "### Response:".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace billion::train {

struct AlpacaExample {
  std::string instruction, input, output;
};

// Reads the file; a malformed file, an entry without string instruction/output, or an empty
// instruction or output is an error naming the file and the entry.
std::vector<AlpacaExample> load_alpaca(const std::string& path);

// The Alpaca prompt (with or without the Input section), ending in "### Response:".
std::string alpaca_prompt(const AlpacaExample& e);

struct TokenizedExample {
  std::vector<int32_t> ids;     // prompt + output + EOS, truncated to max_len
  std::vector<int32_t> labels;  // ids with -100 over the prompt
  int prompt_tokens = 0;
  bool truncated = false;
  int response_tokens() const;  // labels that are not -100
};

// eos_id: appended after the output (the tokenizer's EOS). max_len <= 0: no truncation.
TokenizedExample tokenize_alpaca(const Tokenizer& tok, const AlpacaExample& e, int32_t eos_id, int max_len);

// Next-token targets of one sequence: targets[t] = labels[t + 1], the last one -100 (the
// shift transformers' causal-LM loss does).
std::vector<int32_t> shift_labels(const std::vector<int32_t>& labels);

}  // namespace billion::train
