// A multi-turn conversation with one model: the messages, their rendering through the model's
// own chat template, and the KV cache that holds the conversation so far.
//
// Each turn renders the whole conversation and tokenizes it exactly as `billion generate --chat`
// does (so replies are token-for-token those of a fresh run), then lets generate() reuse the
// longest common token prefix of the cache: with a prefix-stable template (ChatML, Llama-3 with a
// fixed date, Zephyr, ...) a new turn evaluates only its own new tokens. A template that renders
// earlier turns differently (trims a reply, drops reasoning) only costs re-evaluation from the
// first differing token, never a wrong prompt. When the conversation outgrows the context, the
// oldest user/assistant pairs are dropped (the system prompt stays) and the caller is told how many.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "generate/generator.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "tokenizer/chat_template.h"

namespace billion {

struct ChatTurn {
  GenerationResult result;
  int dropped_messages = 0;  // oldest messages removed before this turn to fit the context
  int context_used = 0;      // cache positions filled after the reply
  int context_capacity = 0;
};

// Totals over the session, for /stats.
struct ChatTotals {
  int replies = 0;
  int64_t prompt_tokens = 0, evaluated_prompt_tokens = 0, generated_tokens = 0;
  int64_t dropped_messages = 0;
};

class ChatSession {
 public:
  // `capacity`: KV cache positions. `name` labels the model in error messages.
  ChatSession(Model& model, int capacity, KVType kv_type, std::string name);

  // Replaces the system prompt ("" = none, the template's default applies). History is kept.
  void set_system(const std::string& text);
  const std::string& system() const { return system_; }
  // Forgets the conversation (keeps the system prompt; the cache keeps any reusable prefix).
  void reset();

  // Adds `user_text`, generates the reply (streamed through on_text) and stores it; a reply
  // cut by cancellation or the length limit is stored as far as it got. Room for the reply is
  // reserved as min(max_new_tokens, capacity / 2); older turns are dropped to make it. Throws
  // billion::Error (and leaves the conversation unchanged) if the system prompt and the new
  // message alone do not fit, or the template rejects the conversation.
  // `on_dropped` hears how many messages were dropped, before the reply starts streaming.
  ChatTurn reply(const std::string& user_text, const GenerationOptions& options, ThreadPool& pool,
                 const TextCallback& on_text = {}, const std::function<void(int dropped)>& on_dropped = {});

  // The messages as the template sees them (system first when set).
  std::vector<ChatMessage> messages() const;
  // {"model": path, "system": ..., "messages": [{"role","content"}...]}
  nlohmann::ordered_json to_json() const;

  // The token ids the template and tokenizer give for `messages` (+ the assistant header).
  std::vector<int32_t> render_tokens(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  const std::optional<ChatTurn>& last_turn() const { return last_; }
  const ChatTotals& totals() const { return totals_; }
  int context_used() const { return cache_.size(); }
  int context_capacity() const { return cache_.capacity(); }
  Model& model() { return model_; }
  const std::string& name() const { return name_; }

 private:
  Model& model_;
  std::string name_;
  std::string system_;
  std::vector<ChatMessage> turns_;  // user, assistant, user, assistant, ... (no system)
  KVCache cache_;
  std::vector<int32_t> cached_tokens_;
  // Fixed at construction: Llama-3's template prints today's date in the system header, and a
  // date that changed at midnight would re-render (and re-evaluate) the whole conversation.
  std::string date_string_;
  std::optional<ChatTurn> last_;
  ChatTotals totals_;
};

}  // namespace billion
