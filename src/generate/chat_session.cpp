#include "generate/chat_session.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

#include "core/error.h"

namespace billion {

ChatSession::ChatSession(Model& model, int capacity, KVType kv_type, std::string name)
    : model_(model), name_(std::move(name)) {
  if (!model.chat_template())
    fail(name_, "the model has no chat template, so it cannot chat; use `billion generate` for plain completion");
  cache_ = model.decoder().make_cache(capacity, kv_type);
  // A conversation kept in the cache must answer exactly as `generate --messages` does from
  // scratch, so every split of it into turns and steps must give the same bits (kv_cache.h).
  cache_.set_batch_invariant(true);
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%d %b %Y", &local);
  date_string_ = buffer;
}

void ChatSession::set_system(const std::string& text) { system_ = text; }

void ChatSession::reset() {
  turns_.clear();
  last_.reset();
}

std::vector<ChatMessage> ChatSession::messages() const {
  std::vector<ChatMessage> all;
  if (!system_.empty()) all.push_back({"system", system_});
  all.insert(all.end(), turns_.begin(), turns_.end());
  return all;
}

std::vector<int32_t> ChatSession::render_tokens(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  ChatTemplateInput input;
  input.messages = messages;
  input.add_generation_prompt = add_generation_prompt;
  input.bos_token = model_.bos_text();
  input.eos_token = model_.eos_text();
  input.date_string = date_string_;
  input.source_name = name_ + " chat template";
  std::string rendered = render_chat_template(*model_.chat_template(), input);
  // As transformers' apply_chat_template(tokenize=True) and `billion generate --chat`: the
  // template writes any BOS itself, and its special-token text becomes special tokens.
  return model_.tokenizer().encode(rendered, {.add_special = false, .parse_special = true});
}

ChatTurn ChatSession::reply(const std::string& user_text, const GenerationOptions& options, ThreadPool& pool,
                            const TextCallback& on_text, const std::function<void(int dropped)>& on_dropped) {
  const int capacity = cache_.capacity();
  const int reserve = std::max(1, std::min(options.max_new_tokens, capacity / 2));
  std::vector<ChatMessage> turns = turns_;
  turns.push_back({"user", user_text});
  auto with_system = [&](const std::vector<ChatMessage>& t) {
    std::vector<ChatMessage> all;
    if (!system_.empty()) all.push_back({"system", system_});
    all.insert(all.end(), t.begin(), t.end());
    return all;
  };

  // Drop the oldest user/assistant pair until the prompt leaves room for the reply. Pairs keep
  // the roles alternating, which templates such as Llama-2's insist on.
  ChatTurn turn;
  std::vector<int32_t> prompt = render_tokens(with_system(turns), true);
  while (static_cast<int>(prompt.size()) + reserve > capacity && turns.size() > 1) {
    turns.erase(turns.begin(), turns.begin() + std::min<size_t>(2, turns.size() - 1));
    turn.dropped_messages += 2;
    prompt = render_tokens(with_system(turns), true);
  }
  if (static_cast<int>(prompt.size()) >= capacity)
    fail(name_, "the message needs {} prompt tokens{} but the context holds {}; shorten it or raise --ctx", prompt.size(),
         system_.empty() ? "" : " with the system prompt", capacity);
  turn.dropped_messages = std::min<int>(turn.dropped_messages, static_cast<int>(turns_.size()));
  if (turn.dropped_messages > 0 && on_dropped) on_dropped(turn.dropped_messages);

  turn.result = generate(model_, cache_, cached_tokens_, prompt, options, pool, on_text);
  turns.push_back({"assistant", turn.result.text});
  turns_ = std::move(turns);
  turn.context_used = cache_.size();
  turn.context_capacity = capacity;

  totals_.replies += 1;
  totals_.prompt_tokens += turn.result.prompt_tokens;
  totals_.evaluated_prompt_tokens += turn.result.evaluated_prompt_tokens;
  totals_.generated_tokens += static_cast<int64_t>(turn.result.tokens.size());
  totals_.dropped_messages += turn.dropped_messages;
  last_ = turn;
  return turn;
}

nlohmann::ordered_json ChatSession::to_json() const {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  for (const auto& m : this->messages()) messages.push_back({{"role", m.role}, {"content", m.content}});
  return {{"model", model_.path()}, {"system", system_}, {"messages", messages}};
}

}  // namespace billion
