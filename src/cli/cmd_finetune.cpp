// `billion finetune`: LoRA supervised fine-tuning on alpaca-style data (src/train/trainer.h does
// the work; this file declares the options once).
#include <memory>

#include "cli/command.h"
#include "cli/common_options.h"
#include "cli/model_path.h"
#include "model/model.h"
#include "train/trainer.h"

namespace {

struct FinetuneCli {
  std::string model, quantize;
  billion::train::FinetuneOptions o;
};

void setup(CLI::App& app) {
  auto c = std::make_shared<FinetuneCli>();
  auto& o = c->o;
  auto* cmd = app.add_subcommand("finetune", "LoRA fine-tuning on alpaca-style data; saves a PEFT adapter");
  cmd->add_option("--model,-m", c->model, "Base model: a .gguf file, a model folder, or a model name from the cache")->required();
  cmd->add_option("--data", o.data, "Alpaca JSON list of {instruction, input, output}")->required();
  cmd->add_option("--samples", o.samples, "Training samples (the first N entries)")->capture_default_str();
  cmd->add_option("--eval-samples", o.eval_samples, "Held-out entries after the training ones, for eval loss and the comparison")
      ->capture_default_str();
  cmd->add_option("--epochs", o.epochs, "Epochs")->capture_default_str();
  cmd->add_option("--batch", o.batch, "Sequences per micro-batch")->capture_default_str();
  cmd->add_option("--grad-accum", o.grad_accum, "Micro-batches per optimizer step")->capture_default_str();
  cmd->add_option("--lr", o.lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--rank", o.rank, "LoRA rank r")->capture_default_str();
  cmd->add_option("--alpha", o.alpha, "LoRA alpha (scaling alpha/r)")->capture_default_str();
  cmd->add_option("--lora-dropout", o.dropout, "Dropout on the LoRA input")->capture_default_str();
  cmd->add_option("--targets", o.targets, "Target modules (HF names, e.g. q_proj v_proj), or all-linear; default: PEFT's for the family")
      ->delimiter(',');
  cmd->add_option("--max-len", o.max_len, "Truncate sequences to this many tokens")->capture_default_str();
  cmd->add_option("--schedule", o.schedule, "Learning-rate schedule after warm-up: linear, cosine or constant")->capture_default_str();
  cmd->add_option("--warmup-ratio", o.warmup_ratio, "Fraction of the steps spent warming up")->capture_default_str();
  cmd->add_option("--max-grad-norm", o.max_grad_norm, "Clip the global gradient norm (0 = off)")->capture_default_str();
  cmd->add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of the adapter initialisation, shuffling and dropout")->capture_default_str();
  cmd->add_flag("--recompute", o.recompute, "Recompute each layer in the backward pass (less memory, ~1/3 more time)");
  cmd->add_flag("--resume", o.resume, "Continue from the newest checkpoint-epoch-N under --out");
  cmd->add_flag("!--no-shuffle", o.shuffle, "Keep the data order");
  cmd->add_option("--log-every", o.log_every, "A log line every N steps")->capture_default_str();
  cmd->add_option("--compare", o.compare_prompts, "Held-out prompts answered by the base and the adapted model")->capture_default_str();
  cmd->add_option("--max-new-tokens", o.max_new_tokens, "Tokens per comparison response")->capture_default_str();
  cmd->add_option("--out,-o", o.out, "Output folder")->capture_default_str();
  cmd->add_option("--threads,-t", o.threads, "Threads (0 = physical cores)")->capture_default_str();
  cmd->callback([c] {
    std::string path = billion::cli::model_path(c->model);
    auto model = billion::Model::load(path);
    c->o.model_name = c->model;
    billion::train::run_finetune(*model, c->o);
  });
}

billion::cli::RegisterCommand registration(70, setup);

}  // namespace
