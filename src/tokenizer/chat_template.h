// Chat templates: renders a model's Jinja chat_template (tokenizer_config.json or GGUF
// tokenizer.chat_template) into the prompt text, byte for byte as transformers'
// apply_chat_template(tokenize=False) does. Only the Jinja subset that chat templates use is
// interpreted (see chat_template.cpp for the list); anything else is a billion::Error that names
// the construct and the template line, never a silently wrong prompt.
#pragma once
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace billion {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

struct ChatTemplateInput {
  std::vector<ChatMessage> messages;
  bool add_generation_prompt = false;
  std::string bos_token;
  std::string eos_token;
  // Further template variables (tools, custom flags, or a "messages" array with extra fields such
  // as tool_calls, which then replaces `messages`). Ordered, so tojson keeps the caller's order.
  nlohmann::ordered_json extra_variables = nlohmann::ordered_json::object();
  // When set, passed to the template as the variable `date_string` (Llama 3 uses it in place of
  // strftime_now when defined).
  std::optional<std::string> date_string;
  // The moment strftime_now() formats (local time); unset = the current time. Tests fix it.
  std::optional<std::tm> now;
  // Names the template in error messages, e.g. "models/x/tokenizer_config.json chat_template".
  std::string source_name = "chat template";
};

// Renders `source` with `input`. Throws billion::Error for template syntax errors, unsupported
// constructs, runtime type errors and raise_exception() (whose message is kept verbatim).
std::string render_chat_template(const std::string& source, const ChatTemplateInput& input);

}  // namespace billion
