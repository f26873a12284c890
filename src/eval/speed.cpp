// Speed measurement (see speed.h).
#include "eval/speed.h"

#include <cmath>
#include <vector>

#include "generate/generator.h"

namespace billion::eval {

const std::string& speed_prompt() {
  static const std::string prompt =
      "The history of computing is a story of people finding ways to make machines do arithmetic faster and more "
      "reliably. Early mechanical calculators gave way to electronic computers during the twentieth century, and "
      "the invention of the transistor made them smaller, cheaper and far more powerful. Today a phone in a pocket "
      "holds more computing power than the machines that guided the first missions to the Moon. Write a short essay "
      "about what changed along the way and why it mattered.";
  return prompt;
}

SpeedResult run_speed(Model& model, const SpeedOptions& options, ThreadPool& pool) {
  auto prompt = model.tokenizer().encode(speed_prompt(), {.add_special = true, .parse_special = false});
  auto cache = model.decoder().make_cache(static_cast<int>(prompt.size()) + options.new_tokens + 8);
  GenerationOptions g;
  g.max_new_tokens = options.new_tokens;
  g.stop_at_eos = false;  // every run generates the same number of tokens
  SpeedResult r;
  r.prompt_tokens = static_cast<int>(prompt.size());
  r.new_tokens = options.new_tokens;
  std::vector<double> decode, prefill, ttft;
  for (int run = -1; run < options.runs; ++run) {  // run -1 is the warm-up
    std::vector<int32_t> cached;  // empty: the prompt is evaluated every time
    cache.clear();
    auto out = generate(model, cache, cached, prompt, g, pool);
    if (run < 0) continue;
    decode.push_back(out.decode_tokens_per_second());
    prefill.push_back(out.prefill_tokens_per_second());
    ttft.push_back(out.time_to_first_token);
  }
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / v.size();
  };
  r.runs = static_cast<int>(decode.size());
  r.decode_tps_mean = mean(decode);
  r.prefill_tps_mean = mean(prefill);
  r.ttft_mean_s = mean(ttft);
  double ss = 0;
  for (double x : decode) ss += (x - r.decode_tps_mean) * (x - r.decode_tps_mean);
  r.decode_tps_std = decode.size() > 1 ? std::sqrt(ss / (decode.size() - 1)) : 0.0;
  return r;
}

}  // namespace billion::eval
