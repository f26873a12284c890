// The fine-tuning run: data split and tokenisation, the optimizer-step loop with gradient
// accumulation, clipping and the schedule, progress and logs, a checkpoint each epoch (and
// resuming from the last one), eval loss and greedy responses before and after, and the final
// PEFT adapter. `billion finetune` (src/cli/cmd_finetune.cpp) and bench/bench_finetune.cpp use it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "train/dataset.h"
#include "train/optimizer.h"
#include "train/training_forward.h"

namespace billion::train {

struct FinetuneOptions {
  std::string model_name;  // for adapter_config.json and the logs
  std::string data;
  std::string out = "results/finetune";
  int samples = 100;       // training samples (the first N entries)
  int eval_samples = 10;   // held-out entries right after them
  int epochs = 3;
  int batch = 4;
  int grad_accum = 4;
  double lr = 2e-4;
  int rank = 8;
  float alpha = 16;
  float dropout = 0.05f;
  std::vector<std::string> targets;  // empty: PEFT default for the family
  int max_len = 512;
  std::string schedule = "linear";
  double warmup_ratio = 0.0;
  double max_grad_norm = 1.0;
  double weight_decay = 0.0;
  uint64_t seed = 42;
  bool recompute = false;
  bool resume = false;
  bool shuffle = true;
  int log_every = 10;
  int compare_prompts = 3;   // held-out prompts answered by base and adapted model
  int max_new_tokens = 96;
  int threads = 0;
};

// One optimizer step over the micro-batches (each a PackedBatch of `batch` sequences): the loss
// is the mean over all target tokens of the step (transformers' num_items_in_batch), gradients
// accumulate over micro-batches, then clip, then AdamW at learning rate lr.
struct StepStats {
  double loss = 0;
  int64_t tokens = 0, target_tokens = 0;
  double grad_norm = 0;
};
StepStats optimizer_step(TrainingModel<float>& model, AdamW& adam, const std::vector<PackedBatch>& micro, double lr, double max_grad_norm,
                         ThreadPool& pool);

// Packs examples end to end with next-token targets.
PackedBatch pack_examples(const std::vector<const TokenizedExample*>& examples);

// Mean cross-entropy over the target tokens of the examples (no dropout, no gradients).
double evaluate_loss(TrainingModel<float>& model, const std::vector<TokenizedExample>& examples, int batch, ThreadPool& pool);

// The whole `billion finetune` run on a loaded model; writes everything under options.out.
void run_finetune(Model& model, const FinetuneOptions& options);

}  // namespace billion::train
