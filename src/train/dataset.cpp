// Alpaca data: reading, the prompt template and masking (see dataset.h).
#include "train/dataset.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace billion::train {

std::vector<AlpacaExample> load_alpaca(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open the data file");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, "not valid JSON ({}); expected a list of {{\"instruction\", \"input\", \"output\"}} objects", e.what());
  }
  if (!j.is_array()) fail(path, "expected a JSON list of {{\"instruction\", \"input\", \"output\"}} objects");
  std::vector<AlpacaExample> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& item = j[i];
    if (!item.is_object()) fail(path, "entry {} is not an object", i);
    auto field = [&](const char* name, bool required) -> std::string {
      if (!item.contains(name) || item[name].is_null()) {
        if (required) fail(path, "entry {} has no \"{}\"", i, name);
        return "";
      }
      if (!item[name].is_string()) fail(path, "entry {}: \"{}\" is not a string", i, name);
      return item[name].get<std::string>();
    };
    AlpacaExample e{field("instruction", true), field("input", false), field("output", true)};
    if (e.instruction.empty() || e.output.empty())
      fail(path, "entry {} is empty (the instruction and the output must both have text)", i);
    out.push_back(std::move(e));
  }
  if (out.empty()) fail(path, "the data file has no entries");
  return out;
}

std::string alpaca_prompt(const AlpacaExample& e) {
  if (!e.input.empty())
    return "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that "
           "appropriately completes the request.\n\n### Instruction:\n" +
           e.instruction + "\n\n### Input:\n" + e.input + "\n\n### Response:";
  return "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n" +
         e.instruction + "\n\n### Response:";
}

int TokenizedExample::response_tokens() const {
  int n = 0;
  for (int l : labels) n += l != -100;
  return n;
}

TokenizedExample tokenize_alpaca(const Tokenizer& tok, const AlpacaExample& e, int32_t eos_id, int max_len) {
  const std::string prompt = alpaca_prompt(e);
  TokenizedExample t;
  // As transformers' tokenizer(text): the tokenizer's own BOS rule; data text is never parsed
  // for special tokens; the EOS is the id itself.
  auto prompt_ids = tok.encode(prompt, {.add_special = true, .parse_special = false});
  t.ids = tok.encode(prompt + e.output, {.add_special = true, .parse_special = false});
  t.ids.push_back(eos_id);
  t.prompt_tokens = int(prompt_ids.size());
  t.labels = t.ids;
  for (int i = 0; i < std::min<int>(t.prompt_tokens, int(t.labels.size())); ++i) t.labels[i] = -100;
  if (max_len > 0 && int(t.ids.size()) > max_len) {
    t.ids.resize(max_len);
    t.labels.resize(max_len);
    t.truncated = true;
  }
  return t;
}

std::vector<int32_t> shift_labels(const std::vector<int32_t>& labels) {
  std::vector<int32_t> out(labels.size(), -100);
  for (size_t t = 0; t + 1 < labels.size(); ++t) out[t] = labels[t + 1];
  return out;
}

}  // namespace billion::train
