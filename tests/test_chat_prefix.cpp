// Why `billion chat` can keep a conversation in the KV cache: for each model's chat template,
// the tokens of the conversation rendered at turn k (with the assistant header) must be a prefix
// of the tokens rendered at turn k+1 (after the reply and a new user message), so generate()'s
// common-prefix reuse leaves only the new tokens to evaluate (generate/chat_session.h). The
// end-to-end check with a real model and real replies is tests/py/test_chat.py.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

using namespace billion;

namespace {

const std::string kShared = BILLION_SHARED_DIR;
const std::string kFixtures = std::string(BILLION_FIXTURES_DIR) + "/chat_templates";

struct TemplateCase {
  std::string model;
  ChatTemplateInput base;
  std::string chat_template;
  std::unique_ptr<Tokenizer> tokenizer;
};

TemplateCase load_case(const std::string& model) {
  TemplateCase c;
  c.model = model;
  auto fixture = nlohmann::json::parse(read_text_file(kFixtures + "/" + model + ".json"));
  auto config = nlohmann::json::parse(read_text_file(kShared + "/models/" + model + "/tokenizer_config.json"));
  c.chat_template = config.at("chat_template").get<std::string>();
  c.base.bos_token = fixture.at("bos_token").get<std::string>();
  c.base.eos_token = fixture.at("eos_token").get<std::string>();
  c.base.date_string = "26 Nov 2026";  // as ChatSession fixes it for the whole session
  c.tokenizer = load_tokenizer_from_folder(kShared + "/models/" + model);
  return c;
}

// The conversation after `turns` user messages (and the replies before the last one).
std::vector<ChatMessage> conversation(int turns) {
  const std::vector<std::string> users = {"What is the capital of France?", "And of Italy?", "Which of the two is larger?"};
  const std::vector<std::string> replies = {"The capital of France is Paris.", "The capital of Italy is Rome.",
                                            "Paris has more inhabitants than Rome."};
  std::vector<ChatMessage> m = {{"system", "You are a concise assistant."}};
  for (int t = 0; t < turns; ++t) {
    m.push_back({"user", users[t]});
    if (t + 1 < turns) m.push_back({"assistant", replies[t]});
  }
  return m;
}

std::vector<TokenId> render_tokens(const TemplateCase& c, int turns) {
  ChatTemplateInput input = c.base;
  input.messages = conversation(turns);
  input.add_generation_prompt = true;
  std::string text = render_chat_template(c.chat_template, input);
  return c.tokenizer->encode(text, {.add_special = false, .parse_special = true});
}

// Tokens of turn k that turn k+1 shares at its start.
size_t common_prefix(const std::vector<TokenId>& a, const std::vector<TokenId>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

class PrefixStable : public ::testing::TestWithParam<std::string> {};

TEST_P(PrefixStable, EachTurnExtendsThePreviousTokens) {
  TemplateCase c = load_case(GetParam());
  for (int turns = 1; turns < 3; ++turns) {
    auto before = render_tokens(c, turns);
    auto after = render_tokens(c, turns + 1);
    ASSERT_GT(after.size(), before.size() + 5);
    EXPECT_EQ(common_prefix(before, after), before.size())
        << c.model << ": turn " << turns + 1 << " re-renders earlier tokens differently; chat would re-evaluate from token "
        << common_prefix(before, after) << " of " << before.size();
  }
}

INSTANTIATE_TEST_SUITE_P(Templates, PrefixStable, ::testing::Values("smollm2-135m", "llama3.2-1b", "tinyllama", "llama2-7b-chat"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& ch : name)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });

// Llama-3 prints today's date in its system header: two sessions on different days render
// different prefixes, which is why ChatSession fixes the date once at its start.
TEST(PrefixStable, Llama3DateHeaderDependsOnTheDate) {
  TemplateCase c = load_case("llama3.2-1b");
  auto today = render_tokens(c, 1);
  c.base.date_string = "27 Nov 2026";
  auto tomorrow = render_tokens(c, 1);
  EXPECT_LT(common_prefix(today, tomorrow), today.size());
}

}  // namespace
