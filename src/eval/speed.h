// Speed and memory of one model on this machine: a fixed prompt, one warm-up generation, then
// timed runs (default 5) from an empty cache; mean and standard deviation of decode tok/s, mean
// prefill tok/s and time to first token. Memory is measured with core/process_memory.h (peak
// resident set, reset between models where the kernel allows it).
#pragma once
#include <string>

#include "core/thread_pool.h"
#include "model/model.h"

namespace billion::eval {

struct SpeedOptions {
  int runs = 5;
  int new_tokens = 128;
};

struct SpeedResult {
  int runs = 0, prompt_tokens = 0, new_tokens = 0;
  double decode_tps_mean = 0, decode_tps_std = 0;  // sample std over runs
  double prefill_tps_mean = 0;
  double ttft_mean_s = 0;
};

// The fixed prompt (a plain English paragraph, the same for every model).
const std::string& speed_prompt();

SpeedResult run_speed(Model& model, const SpeedOptions& options, ThreadPool& pool);

}  // namespace billion::eval
