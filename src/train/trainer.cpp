// The fine-tuning run (see trainer.h). Output folder layout:
//   adapter_config.json, adapter_model.safetensors   the final PEFT adapter
//   checkpoint-epoch-N/                              adapter + optimizer.safetensors + trainer_state.json
//   train_log.jsonl                                  one line per optimizer step
//   comparison.md, comparison.json                   base vs adapted greedy responses, held-out prompts
//   summary.json                                     eval loss before/after, time, tokens/s, peak memory
#include "train/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <cstring>
#include <random>

#include "core/error.h"
#include "core/process_memory.h"
#include "formats/hf_folder.h"
#include "formats/safetensors.h"
#include "generate/generator.h"
#include "train/lora.h"

namespace billion::train {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

PackedBatch pack_examples(const std::vector<const TokenizedExample*>& examples) {
  PackedBatch b;
  for (const auto* e : examples) {
    b.starts.push_back(int64_t(b.tokens.size()));
    b.tokens.insert(b.tokens.end(), e->ids.begin(), e->ids.end());
    auto t = shift_labels(e->labels);
    b.targets.insert(b.targets.end(), t.begin(), t.end());
  }
  return b;
}

StepStats optimizer_step(TrainingModel<float>& model, AdamW& adam, const std::vector<PackedBatch>& micro, double lr, double max_grad_norm,
                         ThreadPool& pool) {
  StepStats s;
  for (const auto& m : micro) {
    s.tokens += int64_t(m.tokens.size());
    for (int32_t t : m.targets) s.target_tokens += t >= 0;
  }
  model.zero_grad();
  model.set_training(true);
  if (s.target_tokens == 0) return s;
  double total = 0;
  for (const auto& m : micro) total += model.run(m, 1.0 / double(s.target_tokens), true, pool);
  s.loss = total / double(s.target_tokens);
  s.grad_norm = clip_grad_norm(model.params(), max_grad_norm);
  adam.step(model.params(), lr);
  return s;
}

double evaluate_loss(TrainingModel<float>& model, const std::vector<TokenizedExample>& examples, int batch, ThreadPool& pool) {
  model.set_training(false);
  double total = 0;
  int64_t count = 0;
  for (size_t i = 0; i < examples.size(); i += size_t(batch)) {
    std::vector<const TokenizedExample*> group;
    for (size_t j = i; j < std::min(examples.size(), i + size_t(batch)); ++j) group.push_back(&examples[j]);
    auto b = pack_examples(group);
    for (int32_t t : b.targets) count += t >= 0;
    total += model.run(b, 1.0, false, pool);
  }
  model.set_training(true);
  return count ? total / double(count) : 0.0;
}

namespace {

std::string duration(double s) {
  if (s < 0 || !std::isfinite(s)) return "?";
  int t = int(s + 0.5);
  return t >= 3600 ? fmt::format("{}h{:02}m{:02}s", t / 3600, t / 60 % 60, t % 60) : fmt::format("{}m{:02}s", t / 60, t % 60);
}

void save_optimizer(const std::string& path, AdamW& adam) {
  std::vector<NamedTensor> tensors;
  for (size_t i = 0; i < adam.moments().size(); ++i) {
    tensors.push_back({fmt::format("exp_avg.{:05}", i), {int64_t(adam.moments()[i].size())}, adam.moments()[i].data()});
    tensors.push_back({fmt::format("exp_avg_sq.{:05}", i), {int64_t(adam.second_moments()[i].size())}, adam.second_moments()[i].data()});
  }
  write_safetensors_f32(path, tensors, {{"step", std::to_string(adam.steps())}});
}

void load_optimizer(const std::string& path, AdamW& adam) {
  SafetensorsFile f(path);
  auto load = [&](const std::string& name, std::vector<float>& dst) {
    auto it = f.tensors().find(name);
    if (it == f.tensors().end() || it->second.dtype != SafetensorsDtype::F32 || it->second.n_elements != dst.size())
      fail(path, "optimizer state {} is missing or has the wrong size (the checkpoint belongs to another configuration)", name);
    std::memcpy(dst.data(), it->second.bytes.data(), dst.size() * 4);
  };
  for (size_t i = 0; i < adam.moments().size(); ++i) {
    load(fmt::format("exp_avg.{:05}", i), adam.moments()[i]);
    load(fmt::format("exp_avg_sq.{:05}", i), adam.second_moments()[i]);
  }
  auto it = f.metadata().find("step");
  adam.set_steps(it == f.metadata().end() ? 0 : std::stoll(it->second));
}

std::string greedy_response(Model& model, const AlpacaExample& e, int max_new, ThreadPool& pool) {
  auto prompt = model.tokenizer().encode(alpaca_prompt(e), {.add_special = true, .parse_special = false});
  auto cache = model.decoder().make_cache(int(prompt.size()) + max_new + 1, KVType::F32);
  std::vector<int32_t> cached;
  GenerationOptions g;
  g.max_new_tokens = max_new;
  return generate(model, cache, cached, prompt, g, pool).text;
}

}  // namespace

void run_finetune(Model& model, const FinetuneOptions& o) {
  const auto t_start = Clock::now();
  if (o.samples <= 0 || o.epochs <= 0 || o.batch <= 0 || o.grad_accum <= 0)
    throw Error("finetune: --samples, --epochs, --batch and --grad-accum must be positive");
  if (!(o.lr > 0)) throw Error("finetune: --lr must be positive");
  const auto& spec = model.spec();
  auto data = load_alpaca(o.data);
  if (size_t(o.samples) + size_t(std::max(0, o.eval_samples)) > data.size())
    fail(o.data, "has {} entries but --samples {} plus --eval-samples {} held out need {}", data.size(), o.samples, o.eval_samples,
         o.samples + o.eval_samples);
  const auto& special = model.tokenizer().special_tokens();
  if (!special.eos) fail(model.path(), "the tokenizer has no end-of-sequence token to end the responses with");
  const int max_len = o.max_len > 0 ? std::min(o.max_len, spec.context_length) : spec.context_length;

  std::vector<TokenizedExample> train_set, eval_set;
  int truncated = 0, skipped = 0;
  for (int i = 0; i < o.samples; ++i) {
    auto t = tokenize_alpaca(model.tokenizer(), data[i], *special.eos, max_len);
    truncated += t.truncated;
    if (t.response_tokens() == 0) {  // the prompt alone fills max_len
      ++skipped;
      continue;
    }
    train_set.push_back(std::move(t));
  }
  for (int i = o.samples; i < o.samples + o.eval_samples; ++i) {
    auto t = tokenize_alpaca(model.tokenizer(), data[i], *special.eos, max_len);
    if (t.response_tokens() > 0) eval_set.push_back(std::move(t));
  }
  std::fprintf(stderr, "data: %d training samples, %zu held out; %d longer than --max-len %d were truncated", o.samples, eval_set.size(),
               truncated, max_len);
  if (skipped) std::fprintf(stderr, "; %d skipped (no response token left after truncation)", skipped);
  std::fprintf(stderr, "\n");
  if (train_set.empty()) fail(o.data, "no training sample has a response token within --max-len {}", max_len);

  ThreadPool pool(o.threads);
  const auto t_base = Clock::now();
  FrozenBase base(spec, model.decoder().weights(), pool);
  std::fprintf(stderr, "base: %s, %d layers, hidden %d, dequantized to F32 (+ transposes) %.0f MiB in %.1f s\n", spec.family.c_str(),
               spec.n_layers, spec.hidden, base.bytes() / 1048576.0, std::chrono::duration<double>(Clock::now() - t_base).count());

  LoraConfig lc;
  lc.rank = o.rank;
  lc.alpha = o.alpha;
  lc.dropout = o.dropout;
  lc.targets = o.targets;
  LoraAdapterSet set = create_lora(spec, model.decoder().weights(), lc, o.seed);
  const BaseLayout layout = base_layout_of(model.decoder().weights(), model.format());
  fs::create_directories(o.out);

  const int64_t micro_per_epoch = (int64_t(train_set.size()) + o.batch - 1) / o.batch;
  const int64_t steps_per_epoch = (micro_per_epoch + o.grad_accum - 1) / o.grad_accum;
  const int64_t total_steps = steps_per_epoch * o.epochs;
  const int64_t warmup = int64_t(std::ceil(o.warmup_ratio * double(total_steps)));
  const ScheduleKind schedule = parse_schedule(o.schedule);

  // Resume: the newest checkpoint-epoch-N with a trainer_state.json.
  int start_epoch = 0;
  int64_t global_step = 0;
  double eval_before = -1;
  std::string resumed_from;
  if (o.resume) {
    for (int e = o.epochs; e >= 1; --e) {
      fs::path dir = fs::path(o.out) / fmt::format("checkpoint-epoch-{}", e);
      if (fs::exists(dir / "trainer_state.json")) {
        resumed_from = dir.string();
        break;
      }
    }
  }
  AdamWConfig ac;
  ac.weight_decay = o.weight_decay;
  std::unique_ptr<TrainingModel<float>> tm;
  std::unique_ptr<AdamW> adam;
  if (!resumed_from.empty()) {
    auto state = read_json_file((fs::path(resumed_from) / "trainer_state.json").string());
    auto loaded = load_peft(resumed_from, spec, layout);
    if (loaded.modules.size() != set.modules.size() || loaded.rank != set.rank)
      fail(resumed_from, "the checkpoint's adapter (rank {}, {} modules) does not match this run (rank {}, {} modules)", loaded.rank,
           loaded.modules.size(), set.rank, set.modules.size());
    set.modules = loaded.modules;
    start_epoch = state.at("epoch").get<int>();
    global_step = state.at("global_step").get<int64_t>();
    eval_before = state.value("eval_loss_before", -1.0);
    tm = std::make_unique<TrainingModel<float>>(base, set, o.recompute, o.seed);
    // Every epoch trains exactly micro_per_epoch micro-batches: continue the dropout masks there.
    tm->set_training_batches(uint64_t(start_epoch) * uint64_t(micro_per_epoch));
    adam = std::make_unique<AdamW>(tm->params(), ac);
    load_optimizer((fs::path(resumed_from) / "optimizer.safetensors").string(), *adam);
    std::fprintf(stderr, "resuming from %s (epoch %d done, step %lld)\n", resumed_from.c_str(), start_epoch, (long long)global_step);
  } else {
    tm = std::make_unique<TrainingModel<float>>(base, set, o.recompute, o.seed);
    adam = std::make_unique<AdamW>(tm->params(), ac);
  }
  std::fprintf(stderr, "LoRA: r=%d alpha=%g dropout=%g targets=%s, %zu adapted projections, %lld trainable parameters\n", set.rank,
               double(set.alpha), double(set.dropout), fmt::format("{}", fmt::join(set.targets, ",")).c_str(), set.modules.size(),
               (long long)[&] {
                 int64_t n = 0;
                 for (auto& m : set.modules) n += int64_t(m.a.size() + m.b.size());
                 return n;
               }());
  std::fprintf(stderr, "schedule: %lld steps (%lld per epoch) of %d × %d samples, lr %g %s, warmup %lld, max grad norm %g\n",
               (long long)total_steps, (long long)steps_per_epoch, o.batch, o.grad_accum, o.lr, o.schedule.c_str(), (long long)warmup,
               o.max_grad_norm);

  if (eval_before < 0) {
    eval_before = evaluate_loss(*tm, eval_set, o.batch, pool);
  }
  std::fprintf(stderr, "eval loss before: %.4f (%zu held-out samples)\n", eval_before, eval_set.size());
  // Base responses: the decoder has no adapter attached yet.
  const int n_compare = std::min<int>(o.compare_prompts, o.eval_samples);
  std::vector<std::string> base_responses;
  for (int i = 0; i < n_compare; ++i) base_responses.push_back(greedy_response(model, data[o.samples + i], o.max_new_tokens, pool));

  std::ofstream log(fs::path(o.out) / "train_log.jsonl", resumed_from.empty() ? std::ios::trunc : std::ios::app);
  const bool tty = isatty(fileno(stderr));
  const auto t_train = Clock::now();
  int64_t tokens_done = 0, steps_done = 0;
  double interval_loss = 0;
  int interval_n = 0;
  std::vector<const TokenizedExample*> order(train_set.size());
  for (int epoch = start_epoch; epoch < o.epochs; ++epoch) {
    for (size_t i = 0; i < order.size(); ++i) order[i] = &train_set[i];
    if (o.shuffle) std::shuffle(order.begin(), order.end(), std::mt19937_64(o.seed * 1000003 + uint64_t(epoch)));
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      std::vector<PackedBatch> micro;
      for (int64_t mb = s * o.grad_accum; mb < std::min(micro_per_epoch, (s + 1) * o.grad_accum); ++mb) {
        std::vector<const TokenizedExample*> group(order.begin() + mb * o.batch,
                                                   order.begin() + std::min<int64_t>(int64_t(order.size()), (mb + 1) * o.batch));
        micro.push_back(pack_examples(group));
      }
      const double lr = o.lr * lr_multiplier(schedule, global_step, total_steps, warmup);
      auto st = optimizer_step(*tm, *adam, micro, lr, o.max_grad_norm, pool);
      ++global_step;
      ++steps_done;
      tokens_done += st.tokens;
      interval_loss += st.loss;
      ++interval_n;
      const double elapsed = std::chrono::duration<double>(Clock::now() - t_train).count();
      const double tps = tokens_done / std::max(elapsed, 1e-9);
      const double eta = elapsed / double(steps_done) * double(total_steps - global_step);
      const double epoch_f = epoch + double(s + 1) / double(steps_per_epoch);
      std::string line = fmt::format("step {}/{} | epoch {:.2f} | loss {:.4f} | lr {:.2e} | grad norm {:.3f} | {:.0f} tok/s | ETA {}",
                                     global_step, total_steps, epoch_f, st.loss, lr, st.grad_norm, tps, duration(eta));
      if (tty) {
        const int width = 20, filled = int(width * double(global_step) / double(total_steps));
        std::fprintf(stderr, "\r[%s%s] %s   ", std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(), line.c_str());
      } else {
        std::fprintf(stderr, "%s\n", line.c_str());
      }
      log << nlohmann::json{{"step", global_step}, {"epoch", epoch_f},        {"loss", st.loss},
                            {"lr", lr},            {"grad_norm", st.grad_norm}, {"tokens", st.tokens},
                            {"target_tokens", st.target_tokens}, {"elapsed_s", elapsed}}
                 .dump()
          << "\n";
      log.flush();
      if (o.log_every > 0 && global_step % o.log_every == 0) {
        std::fprintf(stderr, "%s[log] step %lld: loss %.4f (mean of the last %d steps), lr %.2e, %.0f tok/s\n", tty ? "\n" : "",
                     (long long)global_step, interval_loss / interval_n, interval_n, lr, tps);
        interval_loss = 0;
        interval_n = 0;
      }
    }
    // Checkpoint: adapter, optimizer moments, counters.
    fs::path dir = fs::path(o.out) / fmt::format("checkpoint-epoch-{}", epoch + 1);
    tm->export_to(set);
    save_peft(set, spec, layout, dir.string(), o.model_name);
    save_optimizer((dir / "optimizer.safetensors").string(), *adam);
    std::ofstream(dir / "trainer_state.json") << nlohmann::json{{"epoch", epoch + 1},
                                                                {"global_step", global_step},
                                                                {"total_steps", total_steps},
                                                                {"eval_loss_before", eval_before}}
                                                     .dump(2);
    std::fprintf(stderr, "%scheckpoint: %s\n", tty ? "\n" : "", dir.string().c_str());
  }
  const double train_seconds = std::chrono::duration<double>(Clock::now() - t_train).count();

  const double eval_after = evaluate_loss(*tm, eval_set, o.batch, pool);
  std::fprintf(stderr, "eval loss after: %.4f (before %.4f)\n", eval_after, eval_before);
  tm->export_to(set);
  save_peft(set, spec, layout, o.out, o.model_name);
  attach_lora(model, set);
  nlohmann::json cmp = nlohmann::json::array();
  std::string md = fmt::format("# Base vs LoRA-adapted responses ({} held-out prompts, greedy, {} new tokens max)\n\n", n_compare,
                               o.max_new_tokens);
  for (int i = 0; i < n_compare; ++i) {
    const auto& e = data[o.samples + i];
    std::string adapted = greedy_response(model, e, o.max_new_tokens, pool);
    cmp.push_back({{"instruction", e.instruction}, {"input", e.input}, {"reference", e.output}, {"base", base_responses[i]}, {"adapted", adapted}});
    md += fmt::format("## {}. {}\n\n", i + 1, e.instruction);
    if (!e.input.empty()) md += fmt::format("Input: {}\n\n", e.input);
    md += "| base | LoRA-adapted |\n|---|---|\n";
    auto cell = [](std::string s) {
      std::string r;
      for (char c : s) r += c == '\n' ? std::string("<br>") : c == '|' ? std::string("\\|") : std::string(1, c);
      return r;
    };
    md += fmt::format("| {} | {} |\n\nReference: {}\n\n", cell(base_responses[i]), cell(adapted), cell(e.output));
  }
  std::ofstream(fs::path(o.out) / "comparison.json") << cmp.dump(2) << "\n";
  std::ofstream(fs::path(o.out) / "comparison.md") << md;
  const double total_seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  nlohmann::json summary = {{"model", o.model_name},
                            {"data", o.data},
                            {"samples", o.samples},
                            {"eval_samples", eval_set.size()},
                            {"truncated_samples", truncated},
                            {"epochs", o.epochs},
                            {"batch", o.batch},
                            {"grad_accum", o.grad_accum},
                            {"lr", o.lr},
                            {"rank", set.rank},
                            {"alpha", set.alpha},
                            {"targets", set.targets},
                            {"steps", total_steps},
                            {"eval_loss_before", eval_before},
                            {"eval_loss_after", eval_after},
                            {"train_seconds_this_run", train_seconds},
                            {"train_tokens_per_second", tokens_done / std::max(train_seconds, 1e-9)},
                            {"total_seconds", total_seconds},
                            {"threads", pool.size()},
                            {"peak_rss_bytes", peak_rss_bytes()},
                            {"resumed_from", resumed_from}};
  std::ofstream(fs::path(o.out) / "summary.json") << summary.dump(2) << "\n";
  std::fprintf(stderr, "done in %s (training %s, %.0f tok/s); peak memory %.0f MiB; adapter in %s\n", duration(total_seconds).c_str(),
               duration(train_seconds).c_str(), tokens_done / std::max(train_seconds, 1e-9), peak_rss_bytes() / 1048576.0, o.out.c_str());
}

}  // namespace billion::train
