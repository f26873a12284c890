#include "generate/generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/utf8.h"

namespace billion {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Bytes of `text` safe to emit: everything except a tail that is a proper prefix of a stop
// string, moved back to a UTF-8 character boundary.
size_t safe_length(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& s : stops)
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  size_t n = text.size() - hold;
  while (n > 0 && n < text.size() && (static_cast<uint8_t>(text[n]) & 0xc0) == 0x80) --n;
  return n;
}

}  // namespace

GenerationResult generate(Model& model, KVCache& cache, std::vector<int32_t>& cached_tokens, const std::vector<int32_t>& prompt,
                          const GenerationOptions& options, ThreadPool& pool, const TextCallback& on_text) {
  GenerationResult result;
  result.prompt_tokens = static_cast<int>(prompt.size());
  if (prompt.empty()) throw Error("the prompt is empty (no tokens to start from)");
  if (static_cast<int>(prompt.size()) > cache.capacity())
    throw Error(fmt::format("the prompt has {} tokens but the context holds {}; shorten it or raise --ctx", prompt.size(), cache.capacity()));

  // Reuse the longest common prefix already in the cache; at least one token must be evaluated
  // to get logits for the next position.
  size_t common = 0;
  size_t limit = std::min({cached_tokens.size(), prompt.size() - 1, static_cast<size_t>(cache.size())});
  while (common < limit && cached_tokens[common] == prompt[common]) ++common;
  cache.truncate(static_cast<int>(common));
  cached_tokens.resize(common);

  Decoder& decoder = model.decoder();
  const auto& stop_ids = model.stop_ids();
  Sampler sampler(options.sampling);
  std::vector<float> logits;
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  StreamingDecoder stream(model.tokenizer());
  std::string pending;  // decoded but not yet emitted
  size_t emitted = 0;   // bytes of result.text passed to on_text

  auto start = Clock::now();
  std::span<const int32_t> rest(prompt.data() + common, prompt.size() - common);
  decoder.forward(rest, cache, logits, LogitsFor::Last, pool);
  cached_tokens.insert(cached_tokens.end(), rest.begin(), rest.end());
  result.evaluated_prompt_tokens = static_cast<int>(rest.size());
  result.prefill_seconds = seconds_since(start);
  auto decode_start = Clock::now();

  auto emit = [&](bool final) {
    size_t n = final ? result.text.size() : safe_length(result.text, options.stop_strings);
    if (n > emitted && on_text) on_text(result.text.substr(emitted, n - emitted));
    emitted = std::max(emitted, n);
  };

  for (int step = 0; step < options.max_new_tokens; ++step) {
    if (options.cancel && options.cancel->load()) {
      result.stop_reason = "cancelled";
      break;
    }
    int32_t next = sampler.sample(logits, history);
    if (step == 0) result.time_to_first_token = seconds_since(start);
    result.tokens.push_back(next);
    history.push_back(next);
    if (options.stop_at_eos && std::binary_search(stop_ids.begin(), stop_ids.end(), next)) {
      result.stop_reason = "eos";
      break;
    }
    result.text += stream.push(next);
    bool stopped = false;
    for (const auto& s : options.stop_strings) {
      auto at = result.text.find(s, emitted > s.size() ? emitted - s.size() : 0);
      if (!s.empty() && at != std::string::npos) {
        result.text.resize(at);
        stopped = true;
      }
    }
    if (stopped) {
      result.stop_reason = "stop_string";
      break;
    }
    emit(false);
    if (step + 1 == options.max_new_tokens) {
      result.stop_reason = "length";
      break;
    }
    if (cache.size() >= cache.capacity()) {
      result.stop_reason = "context";
      break;
    }
    int32_t token = next;
    decoder.forward(std::span<const int32_t>(&token, 1), cache, logits, LogitsFor::Last, pool);
    cached_tokens.push_back(token);
  }
  if (result.stop_reason.empty()) result.stop_reason = "length";
  if (result.stop_reason != "stop_string") result.text += stream.finish();
  emit(true);
  result.decode_seconds = seconds_since(decode_start);
  return result;
}

}  // namespace billion
