// `billion speculate`: speculative decoding of one or more prompts with a draft model (or n-gram
// prompt lookup, --draft lookup) and a target model, compared in the same run with plain decoding
// of the target on the same prompts and settings. Text goes to stdout, the statistics table to
// stderr, or everything as one JSON object with --json. docs/SPECULATIVE.md explains the numbers.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "cli/common_options.h"
#include "cli/model_path.h"
#include "core/error.h"
#include "generate/generator.h"
#include "generate/lookup_draft.h"
#include "generate/speculative.h"
#include "tokenizer/chat_template.h"

namespace {

struct SpeculateOptions {
  std::string draft = "tinyllama", target = "llama2-7b-chat", prompt, prompts_file, draft_quantize;
  int k = 4, max_tokens = 128, ngram_max = 3;
  bool adaptive = false, json = false, chat = false, no_baseline = false;
  billion::cli::SamplingFlags sampling;
  billion::cli::ModelFlags model_flags;
};

// Prompts from a file: JSON Lines ({"prompt": "..."} per line) when it ends in .jsonl, else one
// prompt per non-empty line with \n and \\ escapes (so a line can hold a multi-line prompt).
std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) billion::fail(path, "cannot open the prompts file");
  std::vector<std::string> prompts;
  std::string line;
  const bool jsonl = path.size() > 6 && path.ends_with(".jsonl");
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    if (jsonl) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.contains("prompt") || !j["prompt"].is_string())
        billion::fail(path, "line {} is not a JSON object with a string \"prompt\"", number);
      prompts.push_back(j["prompt"].get<std::string>());
      continue;
    }
    std::string p;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\' && i + 1 < line.size() && (line[i + 1] == 'n' || line[i + 1] == '\\')) {
        p += line[i + 1] == 'n' ? '\n' : '\\';
        ++i;
      } else {
        p += line[i];
      }
    }
    prompts.push_back(p);
  }
  if (prompts.empty()) billion::fail(path, "no prompts in the file");
  return prompts;
}

std::vector<int32_t> encode_prompt(billion::Model& model, const std::string& text, bool chat, const std::string& name) {
  using namespace billion;
  if (!chat) return model.tokenizer().encode(text, {.add_special = true, .parse_special = false});
  if (!model.chat_template()) throw Error(name + ": the model has no chat template; run without --chat");
  ChatTemplateInput input;
  input.messages.push_back({"user", text});
  input.add_generation_prompt = true;
  input.bos_token = model.bos_text();
  input.eos_token = model.eos_text();
  input.source_name = name + " chat template";
  return model.tokenizer().encode(render_chat_template(*model.chat_template(), input), {.add_special = false, .parse_special = true});
}

nlohmann::json stats_json(const billion::SpeculativeStats& s) {
  nlohmann::json by_position = nlohmann::json::array();
  for (size_t i = 0; i < s.drafted_at.size(); ++i)
    by_position.push_back({{"position", i + 1}, {"drafted", s.drafted_at[i]}, {"accepted", s.accepted_at[i]},
                           {"rate", s.drafted_at[i] ? double(s.accepted_at[i]) / s.drafted_at[i] : 0.0}});
  return {{"generated_tokens", s.generated},     {"target_passes", s.passes},
          {"drafted", s.drafted},                {"accepted", s.accepted},
          {"acceptance_rate", s.acceptance_rate()}, {"accepted_per_pass", s.accepted_per_pass()},
          {"tokens_per_pass", s.tokens_per_pass()}, {"mean_k", s.mean_k()},
          {"acceptance_by_position", by_position}, {"prefill_s", s.prefill_seconds},
          {"draft_s", s.draft_seconds},          {"target_s", s.target_seconds},
          {"total_s", s.total_seconds},          {"decode_tokens_per_second", s.decode_tokens_per_second()}};
}

void run(const SpeculateOptions& o) {
  using namespace billion;
  if (o.k < 1 || o.k > kMaxDraftTokens) throw Error(fmt::format("-k {}: the number of draft tokens must be 1..{}", o.k, kMaxDraftTokens));
  if (!o.prompt.empty() && !o.prompts_file.empty()) throw Error("give --prompt or --prompts, not both");
  std::vector<std::string> prompts;
  if (!o.prompts_file.empty()) prompts = read_prompts(o.prompts_file);
  else if (o.prompt == "-") prompts.push_back(std::string(std::istreambuf_iterator<char>(std::cin), {}));
  else if (!o.prompt.empty()) prompts.push_back(o.prompt);
  else throw Error("give a prompt with --prompt TEXT or --prompts FILE");

  auto target = cli::load_model(o.target, o.model_flags);
  const int capacity = o.model_flags.capacity(*target);
  ThreadPool pool(o.model_flags.threads);
  std::unique_ptr<Model> draft_model;
  std::unique_ptr<Drafter> drafter;
  const SamplingOptions sampling = o.sampling.options();
  if (o.draft == "lookup") {
    drafter = std::make_unique<LookupDrafter>(o.ngram_max, 1);
  } else {
    draft_model = Model::load(cli::model_path(o.draft), {parse_load_quantization(o.draft_quantize)});
    check_tokenizers_compatible(draft_model->tokenizer(), target->tokenizer(), o.draft, o.target);
    drafter = std::make_unique<ModelDrafter>(*draft_model, o.model_flags.capacity(*draft_model), o.model_flags.kv(), sampling, pool);
  }

  std::vector<std::vector<int32_t>> encoded;
  for (const auto& p : prompts) {
    encoded.push_back(encode_prompt(*target, p, o.chat, o.target));
    const int n = static_cast<int>(encoded.back().size());
    if (n >= capacity) throw Error(fmt::format("prompt {} has {} tokens but the target's context holds {}; shorten it or raise --ctx", encoded.size(), n, capacity));
    if (n >= drafter->capacity())
      throw Error(fmt::format("prompt {} has {} tokens but the draft's context holds {}; shorten it or raise --ctx", encoded.size(), n, drafter->capacity()));
  }

  auto cache = target->decoder().make_cache(capacity, o.model_flags.kv());
  SpeculativeOptions spec;
  spec.k = o.k;
  spec.adaptive = o.adaptive;
  spec.max_new_tokens = o.max_tokens;
  spec.sampling = sampling;
  GenerationOptions plain;
  plain.max_new_tokens = o.max_tokens;
  plain.sampling = sampling;

  // Warm-up (untimed): page the weights in so neither method pays the first touch.
  {
    std::vector<int32_t> cached;
    GenerationOptions w = plain;
    w.max_new_tokens = 2;
    generate(*target, cache, cached, encoded[0], w, pool);
    if (draft_model) {
      std::vector<int32_t> dc;
      auto dcache = draft_model->decoder().make_cache(capacity, o.model_flags.kv());
      std::vector<float> logits;
      std::vector<int32_t> one(encoded[0].begin(), encoded[0].begin() + 1);
      draft_model->decoder().forward(one, dcache, logits, LogitsFor::Last, pool);
    }
  }

  SpeculativeStats total;
  double plain_tokens = 0, plain_decode_s = 0, plain_total_s = 0;
  int identical = 0;
  nlohmann::json per_prompt = nlohmann::json::array();
  for (size_t i = 0; i < encoded.size(); ++i) {
    GenerationResult base;
    if (!o.no_baseline) {
      std::vector<int32_t> cached;
      cache.clear();
      base = generate(*target, cache, cached, encoded[i], plain, pool);
      plain_tokens += base.tokens.size();
      plain_decode_s += base.decode_seconds;
      plain_total_s += base.prefill_seconds + base.decode_seconds;
    }
    if (!o.json && prompts.size() > 1) std::printf("--- prompt %zu\n", i + 1);
    TextCallback on_text;
    if (!o.json) on_text = [](const std::string& t) {
      std::fwrite(t.data(), 1, t.size(), stdout);
      std::fflush(stdout);
    };
    auto result = speculative_generate(*target, cache, *drafter, encoded[i], spec, pool, on_text);
    if (!o.json) std::printf("\n");
    total.add(result.stats);
    bool same = !o.no_baseline && base.tokens == result.tokens;
    identical += same;
    nlohmann::json j{{"prompt_tokens", encoded[i].size()}, {"text", result.text}, {"tokens", result.tokens},
                     {"stop_reason", result.stop_reason}, {"speculative", stats_json(result.stats)}};
    if (!o.no_baseline)
      j["plain"] = {{"generated_tokens", base.tokens.size()}, {"prefill_s", base.prefill_seconds}, {"decode_s", base.decode_seconds},
                    {"decode_tokens_per_second", base.decode_seconds > 0 ? base.tokens.size() / base.decode_seconds : 0.0},
                    {"identical_tokens", same}};
    per_prompt.push_back(j);
  }

  const double spec_rate = total.decode_tokens_per_second();
  const double plain_rate = plain_decode_s > 0 ? plain_tokens / plain_decode_s : 0;
  const double spec_e2e = total.total_seconds > 0 ? total.generated / total.total_seconds : 0;
  const double plain_e2e = plain_total_s > 0 ? plain_tokens / plain_total_s : 0;
  const bool greedy = sampling.temperature <= 0;
  if (o.json) {
    nlohmann::json j{{"draft", o.draft}, {"target", o.target}, {"k", o.k}, {"adaptive", o.adaptive}, {"temperature", sampling.temperature},
                     {"seed", sampling.seed}, {"threads", pool.size()}, {"prompts", per_prompt}, {"speculative", stats_json(total)}};
    if (!o.no_baseline) {
      j["plain"] = {{"generated_tokens", plain_tokens}, {"decode_tokens_per_second", plain_rate}, {"tokens_per_second", plain_e2e}};
      j["speedup"] = plain_rate > 0 ? spec_rate / plain_rate : 0.0;
      j["speedup_end_to_end"] = plain_e2e > 0 ? spec_e2e / plain_e2e : 0.0;
      if (greedy) j["greedy_identical_prompts"] = identical;
    }
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::fprintf(stderr, "\nspeculative decoding: draft %s, target %s, K %d%s, %s, %d threads\n", o.draft.c_str(), o.target.c_str(), o.k,
               o.adaptive ? fmt::format(" (adaptive, mean {:.2f})", total.mean_k()).c_str() : "",
               greedy ? "greedy" : fmt::format("temperature {:g}, seed {}", sampling.temperature, sampling.seed).c_str(), pool.size());
  std::fprintf(stderr, "  generated %d tokens in %d target passes (%.2f tokens/pass)\n", total.generated, total.passes, total.tokens_per_pass());
  std::fprintf(stderr, "  drafted %d, accepted %d: acceptance %.1f%%, %.2f accepted per pass\n", total.drafted, total.accepted,
               100 * total.acceptance_rate(), total.accepted_per_pass());
  std::string by_pos;
  for (size_t i = 0; i < total.drafted_at.size(); ++i)
    by_pos += fmt::format(" {}:{:.0f}%", i + 1, total.drafted_at[i] ? 100.0 * total.accepted_at[i] / total.drafted_at[i] : 0.0);
  std::fprintf(stderr, "  acceptance by draft position:%s\n", by_pos.c_str());
  std::fprintf(stderr, "  time: prefill %.3f s, draft %.3f s, target %.3f s, total %.3f s\n", total.prefill_seconds, total.draft_seconds,
               total.target_seconds, total.total_seconds);
  if (o.no_baseline) {
    std::fprintf(stderr, "  decode %.2f tok/s\n", spec_rate);
  } else {
    std::fprintf(stderr, "  decode: speculative %.2f tok/s, plain %.2f tok/s, speedup %.2fx (end to end %.2fx)\n", spec_rate, plain_rate,
                 plain_rate > 0 ? spec_rate / plain_rate : 0.0, plain_e2e > 0 ? spec_e2e / plain_e2e : 0.0);
    if (greedy) std::fprintf(stderr, "  greedy outputs identical to plain decoding: %d of %zu prompts\n", identical, encoded.size());
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<SpeculateOptions>();
  auto* cmd = app.add_subcommand("speculate", "Speculative decoding with a draft model or prompt lookup, compared with plain decoding");
  cmd->add_option("--draft", o->draft, "Draft model (file, folder or name), or 'lookup' for n-gram prompt lookup")->capture_default_str();
  cmd->add_option("--target", o->target, "Target model (file, folder or name)")->capture_default_str();
  cmd->add_option("-k,--draft-tokens", o->k, "Draft tokens per target pass (1..32)")->capture_default_str();
  cmd->add_option("--prompt,-p", o->prompt, "The prompt; - reads it from stdin");
  cmd->add_option("--prompts", o->prompts_file, "A file of prompts: one per line (\\n for newlines) or .jsonl with {\"prompt\": ...}");
  cmd->add_option("-n,--max-tokens", o->max_tokens, "Maximum new tokens per prompt")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_flag("--adaptive", o->adaptive, "Change K from recent acceptance (+1 when all accepted, -1 when under half)");
  cmd->add_flag("--chat", o->chat, "Wrap each prompt in the target's chat template as a user message");
  cmd->add_option("--draft-quantize", o->draft_quantize, "Re-quantize the draft's float weights at load: int8, int4 or f32")
      ->check(CLI::IsMember({"int8", "int4", "f32"}));
  cmd->add_option("--ngram-max", o->ngram_max, "Longest n-gram the lookup draft matches")->capture_default_str()->check(CLI::Range(1, 16));
  cmd->add_flag("--no-baseline", o->no_baseline, "Skip the plain-decoding comparison");
  cmd->add_flag("--json", o->json, "Print one JSON object with the texts and the statistics");
  o->sampling.add_to(cmd);
  o->model_flags.add_to(cmd);
  cmd->callback([o] { run(*o); });
}

billion::cli::RegisterCommand registration(60, setup);

}  // namespace
