// The generation loop: prefill the prompt (or only the part not already in the KV cache), then
// decode token by token until an end-of-sequence id, a stop string, the token limit or the
// context's end; text is streamed as complete UTF-8 characters, holding back any tail that could
// still become a stop string. Timing is measured here so every front end reports the same numbers.
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "generate/sampler.h"
#include "model/model.h"

namespace billion {

struct GenerationOptions {
  int max_new_tokens = 256;
  SamplingOptions sampling;
  std::vector<std::string> stop_strings;
  bool stop_at_eos = true;
  const std::atomic<bool>* cancel = nullptr;  // set from a signal handler to stop early
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids (without the prompt; includes a final eos id)
  std::string text;             // decoded text, cut before any stop string, without eos text
  int prompt_tokens = 0;        // tokens of the prompt
  int evaluated_prompt_tokens = 0;  // of those, evaluated now (the rest came from the cache)
  double prefill_seconds = 0, decode_seconds = 0, time_to_first_token = 0;
  std::string stop_reason;  // "eos", "stop_string", "length", "context", "cancelled"

  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? evaluated_prompt_tokens / prefill_seconds : 0; }
  // Decode rate over the tokens after the first (the first comes from prefill).
  double decode_tokens_per_second() const {
    return decode_seconds > 0 && tokens.size() > 1 ? (tokens.size() - 1) / decode_seconds : 0;
  }
};

using TextCallback = std::function<void(const std::string& text)>;

// Generates a continuation of `prompt` using `cache`. If the cache already holds a prefix of
// `prompt` (same tokens, tracked by `cached_tokens`), only the rest is evaluated; afterwards
// `cached_tokens` is the cache's content. Throws billion::Error if the prompt does not fit.
GenerationResult generate(Model& model, KVCache& cache, std::vector<int32_t>& cached_tokens, const std::vector<int32_t>& prompt,
                          const GenerationOptions& options, ThreadPool& pool, const TextCallback& on_text = {});

}  // namespace billion
