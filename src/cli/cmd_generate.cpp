// `billion generate`: one completion of a prompt (optionally through the chat template), text
// streamed to stdout, statistics to stderr (or everything as one JSON object with --json).
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "cli/common_options.h"
#include "core/error.h"
#include "generate/generator.h"
#include "tokenizer/chat_template.h"
#include "train/lora.h"

namespace {

struct GenerateOptions {
  std::string model, prompt, system, messages_file, lora;
  bool chat = false, json = false, truncate_prompt = false, prompt_given = false;
  int max_tokens = 128;
  std::vector<std::string> stops;
  billion::cli::SamplingFlags sampling;
  billion::cli::ModelFlags model_flags;
};

// A conversation for --messages: a JSON array of {"role", "content"} objects, or an object with
// such a "messages" array (what `billion chat`'s /save writes).
std::vector<billion::ChatMessage> read_messages(const std::string& path) {
  using billion::fail;
  std::ifstream in(path);
  if (!in) fail(path, "cannot open the conversation file");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) fail(path, "not valid JSON");
  if (j.is_object() && j.contains("messages")) j = j["messages"];
  if (!j.is_array() || j.empty()) fail(path, "expected a non-empty array of {{\"role\", \"content\"}} messages");
  std::vector<billion::ChatMessage> messages;
  for (const auto& m : j) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") || !m["content"].is_string())
      fail(path, "message {} is not an object with string \"role\" and \"content\"", messages.size());
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return messages;
}

void run(const GenerateOptions& o) {
  using namespace billion;
  bool from_messages = !o.messages_file.empty();
  if (from_messages == o.prompt_given) throw Error("generate: give either --prompt or --messages");
  if (from_messages && !o.system.empty()) throw Error("--system cannot be combined with --messages (put it in the file)");
  auto model = cli::load_model(o.model, o.model_flags);
  if (!o.lora.empty()) train::attach_peft_adapter(*model, o.lora);
  std::string prompt_text = o.prompt;
  if (prompt_text == "-") prompt_text.assign(std::istreambuf_iterator<char>(std::cin), {});
  std::vector<int32_t> prompt;
  if (o.chat || from_messages) {
    if (!model->chat_template()) throw Error(o.model + ": the model has no chat template; run without --chat");
    ChatTemplateInput input;
    if (from_messages) {
      input.messages = read_messages(o.messages_file);
    } else {
      if (!o.system.empty()) input.messages.push_back({"system", o.system});
      input.messages.push_back({"user", prompt_text});
    }
    input.add_generation_prompt = true;
    input.bos_token = model->bos_text();
    input.eos_token = model->eos_text();
    input.source_name = o.model + " chat template";
    std::string rendered = render_chat_template(*model->chat_template(), input);
    // As transformers' apply_chat_template(tokenize=True): the template writes any BOS itself.
    prompt = model->tokenizer().encode(rendered, {.add_special = false, .parse_special = true});
  } else {
    if (!o.system.empty()) throw Error("--system needs --chat");
    prompt = model->tokenizer().encode(prompt_text, {.add_special = true, .parse_special = false});
  }
  int capacity = o.model_flags.capacity(*model);
  if (static_cast<int>(prompt.size()) >= capacity) {
    if (!o.truncate_prompt)
      throw Error(fmt::format("the prompt has {} tokens but the context holds {}; shorten it, raise --ctx, or pass --truncate-prompt",
                              prompt.size(), capacity));
    size_t keep = std::max(1, capacity - o.max_tokens);
    std::fprintf(stderr, "note: prompt truncated from %zu to its last %zu tokens\n", prompt.size(), keep);
    prompt.erase(prompt.begin(), prompt.end() - keep);
  }
  ThreadPool pool(o.model_flags.threads);
  auto cache = model->decoder().make_cache(capacity, o.model_flags.kv());
  // A --messages conversation continues exactly as `billion chat` continues it with its history in
  // the cache: both use a batch-invariant cache (kv_cache.h). A plain prompt keeps llama.cpp's bits.
  if (from_messages) cache.set_batch_invariant(true);
  std::vector<int32_t> cached;
  GenerationOptions options;
  options.max_new_tokens = o.max_tokens;
  options.sampling = o.sampling.options();
  options.stop_strings = o.stops;
  TextCallback on_text;
  if (!o.json) on_text = [](const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  };
  auto result = generate(*model, cache, cached, prompt, options, pool, on_text);
  if (o.json) {
    nlohmann::json j{{"text", result.text},
                     {"tokens", result.tokens},
                     {"prompt_tokens", result.prompt_tokens},
                     {"generated_tokens", result.tokens.size()},
                     {"time_to_first_token_s", result.time_to_first_token},
                     {"prefill_tokens_per_second", result.prefill_tokens_per_second()},
                     {"decode_tokens_per_second", result.decode_tokens_per_second()},
                     {"stop_reason", result.stop_reason},
                     {"threads", pool.size()}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("\n");
    std::fprintf(stderr, "\n[prompt %d tokens | generated %zu tokens | first token %.3f s | prefill %.1f tok/s | decode %.1f tok/s | stop: %s]\n",
                 result.prompt_tokens, result.tokens.size(), result.time_to_first_token, result.prefill_tokens_per_second(),
                 result.decode_tokens_per_second(), result.stop_reason.c_str());
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "Generate a continuation of a prompt (statistics go to stderr)");
  cmd->add_option("--model,-m", o->model, "A .gguf file, a model folder, or a model name from the cache")->required();
  auto* prompt = cmd->add_option("--prompt,-p", o->prompt, "The prompt; - reads it from stdin");
  cmd->add_flag("--chat", o->chat, "Wrap the prompt in the model's chat template as a user message");
  cmd->add_option("--messages", o->messages_file,
                  "A conversation as JSON ([{\"role\", \"content\"}...] or chat's /save file) to continue through the chat template")
      ->excludes(prompt);
  cmd->add_option("--system", o->system, "System message (with --chat)");
  cmd->add_option("-n,--max-tokens", o->max_tokens, "Maximum new tokens")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--stop", o->stops, "Stop when this text appears (repeatable)");
  cmd->add_flag("--truncate-prompt", o->truncate_prompt, "Keep the end of a prompt too long for the context instead of failing");
  cmd->add_option("--lora", o->lora, "Apply a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors)");
  cmd->add_flag("--json", o->json, "Print one JSON object with the text and the statistics");
  o->sampling.add_to(cmd);
  o->model_flags.add_to(cmd);
  cmd->callback([o, prompt] {
    o->prompt_given = prompt->count() > 0;
    run(*o);
  });
}

billion::cli::RegisterCommand registration(30, setup);

}  // namespace
