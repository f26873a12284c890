// Chat templates (src/tokenizer/chat_template.h) against transformers: every model's template
// with five conversations must render byte-identically to apply_chat_template, and one small
// template per supported Jinja construct must match Jinja (fixtures from
// tools/make_chat_template_refs.py). Errors: unsupported constructs, raise_exception, malformed
// templates, each an Error that names the template and line.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/utf8.h"
#include "tokenizer/chat_template.h"

using namespace billion;
using json = nlohmann::ordered_json;

namespace {

const std::string kShared = BILLION_SHARED_DIR;
const std::string kFixtures = std::string(BILLION_FIXTURES_DIR) + "/chat_templates";

json load_json(const std::string& path) { return json::parse(read_text_file(path)); }

// The fixtures' fixed "now" (strftime_now); the date is stored as YYYY-MM-DD, the time is noon.
std::tm fixed_now(const std::string& date) {
  std::tm t{};
  t.tm_year = std::stoi(date.substr(0, 4)) - 1900;
  t.tm_mon = std::stoi(date.substr(5, 2)) - 1;
  t.tm_mday = std::stoi(date.substr(8, 2));
  t.tm_hour = 12;
  std::tm copy = t;
  timegm(&copy);  // fills tm_wday/tm_yday so %a/%j would work too
  t.tm_wday = copy.tm_wday;
  t.tm_yday = copy.tm_yday;
  return t;
}

// Template text and input for one case of a model fixture.
struct ModelFixture {
  std::string template_text;
  std::string source_name;
  json doc;
};

ModelFixture load_model_fixture(const std::string& model) {
  ModelFixture f;
  f.doc = load_json(kFixtures + "/" + model + ".json");
  if (f.doc.contains("template_file")) {
    const std::string path = kShared + "/" + f.doc["template_file"].get<std::string>();
    f.template_text = load_json(path).at("chat_template").get<std::string>();
    f.source_name = path + " chat_template";
  } else {
    f.template_text = f.doc.at("template").get<std::string>();
    f.source_name = model + " ChatML template";
  }
  return f;
}

ChatTemplateInput input_for(const ModelFixture& f, const json& c) {
  ChatTemplateInput in;
  in.bos_token = f.doc.at("bos_token").get<std::string>();
  in.eos_token = f.doc.at("eos_token").get<std::string>();
  in.add_generation_prompt = c.at("add_generation_prompt").get<bool>();
  in.now = fixed_now(f.doc.at("date").get<std::string>());
  in.source_name = f.source_name;
  bool plain = true;
  for (const auto& m : c.at("messages")) {
    plain = plain && m.size() == 2 && m.contains("role") && m.contains("content");
    in.messages.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
  }
  if (c.contains("extra_variables")) in.extra_variables = c["extra_variables"];
  if (!plain) in.extra_variables["messages"] = c["messages"];  // tool_calls etc.
  return in;
}

// Shows where two renders part, with the bytes around it escaped.
std::string first_difference(const std::string& expected, const std::string& got) {
  size_t k = 0;
  while (k < expected.size() && k < got.size() && expected[k] == got[k]) ++k;
  size_t from = k > 40 ? k - 40 : 0;
  return "first difference at byte " + std::to_string(k) + "\n  expected ..." +
         printable(expected.substr(from), 120) + "\n  got      ..." + printable(got.substr(from), 120);
}

class ModelTemplates : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelTemplates, RendersLikeTransformers) {
  const auto f = load_model_fixture(GetParam());
  ASSERT_GE(f.doc.at("cases").size(), 5u);
  for (const auto& c : f.doc.at("cases")) {
    const std::string name = c.at("name").get<std::string>();
    const std::string expected = c.at("expected").get<std::string>();
    std::string got;
    try {
      got = render_chat_template(f.template_text, input_for(f, c));
    } catch (const Error& e) {
      ADD_FAILURE() << GetParam() << "/" << name << ": " << e.what();
      continue;
    }
    EXPECT_EQ(got, expected) << GetParam() << "/" << name << ": " << first_difference(expected, got);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ModelTemplates,
                         ::testing::Values("smollm2-135m", "tinyllama", "llama2-7b-chat", "llama3.2-1b", "stablelm"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(ChatTemplateFeatures, EachConstructMatchesJinja) {
  const json doc = load_json(kFixtures + "/features.json");
  const std::tm now = fixed_now(doc.at("date").get<std::string>());
  size_t n = 0;
  for (const auto& c : doc.at("cases")) {
    ChatTemplateInput in;
    in.extra_variables = c.at("variables");
    in.now = now;
    in.source_name = "features/" + c.at("name").get<std::string>();
    const std::string expected = c.at("expected").get<std::string>();
    try {
      const std::string got = render_chat_template(c.at("template").get<std::string>(), in);
      EXPECT_EQ(got, expected) << in.source_name << ": " << first_difference(expected, got);
    } catch (const Error& e) {
      ADD_FAILURE() << in.source_name << ": " << e.what();
    }
    ++n;
  }
  EXPECT_GE(n, 40u);
}

TEST(ChatTemplate, DateStringOverridesStrftime) {
  auto f = load_model_fixture("llama3.2-1b");
  ChatTemplateInput in;
  in.messages = {{"user", "Hi"}};
  in.bos_token = "<|begin_of_text|>";
  in.date_string = "01 Jan 2000";
  const std::string out = render_chat_template(f.template_text, in);
  EXPECT_NE(out.find("Today Date: 01 Jan 2000\n"), std::string::npos) << out;
}

// Runs `source` and returns the Error message ("" if it rendered).
std::string error_of(const std::string& source, ChatTemplateInput in = {}) {
  in.source_name = "test.jinja";
  try {
    render_chat_template(source, in);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::string& source, const std::string& needle, const std::string& where = "test.jinja:") {
  const std::string message = error_of(source);
  EXPECT_NE(message.find(needle), std::string::npos) << "template " << printable(source) << " gave: " << printable(message, 300);
  EXPECT_NE(message.find(where), std::string::npos) << "no location in: " << message;
}

TEST(ChatTemplateErrors, UnsupportedConstructsAreNamed) {
  expect_error("{% include 'x.jinja' %}", "unsupported statement {% include %}");
  expect_error("{% raw %}{{ x }}{% endraw %}", "unsupported statement {% raw %}");
  expect_error("{% extends 'base' %}", "unsupported statement {% extends %}");
  expect_error("{% call m() %}x{% endcall %}", "unsupported statement {% call %}");
  expect_error("{{ 'a b'|wordcount }}", "unsupported filter 'wordcount'");
  expect_error("{{ 1 is prime }}", "unsupported test 'prime'");
  expect_error("{{ 'abc'.zfill(5) }}", "'str.zfill' is not callable");
  expect_error("{% for x in items recursive %}{% endfor %}", "recursive");
  expect_error("{{ '{:>5}'.format(1) }}", "unsupported: format spec");
  expect_error("{{ f(*args) }}", "unsupported: *args");
  expect_error("\n\n{{ x|tojson(ensure_ascii=true) }}", "ensure_ascii", "test.jinja:3");
}

TEST(ChatTemplateErrors, RaiseExceptionKeepsTheTemplatesMessage) {
  auto f = load_model_fixture("llama2-7b-chat");
  ChatTemplateInput in;
  in.messages = {{"user", "a"}, {"user", "b"}};  // roles must alternate
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  in.source_name = "llama2";
  try {
    render_chat_template(f.template_text, in);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Conversation roles must alternate user/assistant/user/assistant/..."),
              std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("llama2:1"), std::string::npos) << e.what();
  }
  EXPECT_EQ(error_of("{{ raise_exception('custom: ' ~ 42) }}").find("custom: 42") != std::string::npos, true);
}

TEST(ChatTemplateErrors, MalformedTemplates) {
  expect_error("{% if x %}never closed", "template ended inside a block");
  expect_error("{% for x in y %}a", "template ended inside a block");
  expect_error("{% endif %}", "unsupported statement {% endif %}");
  expect_error("{{ 1 + }}", "unexpected end of tag");
  expect_error("{{ x", "tag is never closed");
  expect_error("line1\n{{ 'abc }}", "string literal is never closed", "test.jinja:2");
  expect_error("{# open comment", "comment is never closed");
  expect_error("{% for %}{% endfor %}", "expected a name");
  expect_error("{{ a b }}", "unexpected 'b'");
  expect_error("{{ x @ y }}", "unexpected character");
  expect_error("{% set x.y = 1 %}", "only namespace() objects");
  expect_error("{{ 'a' + 1 }}", "unsupported operand types for +: string and int");
  expect_error("{{ missing.attr }}", "'missing' is undefined");
  expect_error("{{ 1 / 0 }}", "division by zero");
  // 64-bit integers: overflow is an error, not undefined behaviour (found by fuzz_chat_template).
  expect_error("{{ 38 ** 28382 }}", "integer overflow in **");
  expect_error("{{ 9223372036854775807 + 1 }}", "integer overflow in +");
  expect_error("{{ -9223372036854775807 - 2 }}", "integer overflow in -");
  expect_error("{{ 4294967296 * 4294967296 }}", "integer overflow in *");
  ChatTemplateInput in;  // ...while results that fit are exact, and 0/1/-1 take any exponent at once
  EXPECT_EQ(render_chat_template("{{ 2 ** 62 }} {{ (-1) ** 1000000000001 }} {{ 1 ** 9000000000000000000 }} {{ 7 // -2 }}", in),
            "4611686018427387904 -1 1 -4");
  expect_error("{% break %}", "break outside a for loop");
  // Nesting is limited (found by fuzz_chat_template: {{ [++++...x }} with ~1,800 unary plus
  // signs overflowed the renderer's stack); templates nested as deep as real ones still render.
  expect_error("{{ " + std::string(5000, '+') + "1 }}", "nested more than 256 levels deep");
  expect_error("{{ " + std::string(3000, '(') + "1" + std::string(3000, ')') + " }}", "nested more than 256 levels deep");
  expect_error("{{ " + std::string(3000, '-') + "1 }}", "nested more than 256 levels deep");
  std::string not_chain;
  for (int i = 0; i < 3000; ++i) not_chain += "not ";
  expect_error("{{ " + not_chain + "true }}", "nested more than 256 levels deep");
  std::string blocks;
  for (int i = 0; i < 300; ++i) blocks += "{% if true %}";
  expect_error(blocks, "nested more than 256 levels deep");
  EXPECT_EQ(render_chat_template("{{ " + std::string(20, '(') + "-+-1" + std::string(20, ')') + " }}", in), "1");
}

// A template can make a container refer to itself; the render must still free everything (the
// sanitizer build's leak checker fails this test otherwise), whether it ends normally or by an error.
TEST(ChatTemplate, ReferenceCyclesAreFreed) {
  ChatTemplateInput in;
  EXPECT_EQ(render_chat_template("{% set ns = namespace(n=1) %}{% set ns.me = ns %}{{ ns.me.me.n }}", in), "1");
  EXPECT_EQ(render_chat_template("{% set ns = namespace() %}{% set ns.l = [ns] %}{{ ns.l[0].l|length }}", in), "1");
  EXPECT_THROW(render_chat_template("{% set ns = namespace(n=0) %}{% set ns.me = ns %}{{ ns + 1 }}", in), Error);
}

TEST(ChatTemplate, UndefinedPrintsEmptyAndIsFalsy) {
  ChatTemplateInput in;
  EXPECT_EQ(render_chat_template("[{{ nothing }}]{% if nothing %}x{% endif %}{{ nothing|length }}", in), "[]0");
  // transformers always defines tools and documents, as None.
  EXPECT_EQ(render_chat_template("{{ tools is defined }} {{ tools is none }} {{ documents }}", in), "True True None");
}

}  // namespace

// Found by fuzz_chat_template: malformed escapes and out-of-range literals are Errors, not crashes.
TEST(ChatTemplateErrors, BadEscapesAndHugeLiteralsAreErrors) {
  billion::ChatTemplateInput input;
  input.source_name = "fuzzed template";
  for (const char* source : {"{{ '\\xZZ' }}", "{{ '\\u-001' }}", "{{ '\\U00110000' }}", "{{ 99999999999999999999999 }}"}) {
    try {
      billion::render_chat_template(source, input);
      ADD_FAILURE() << "accepted " << source;
    } catch (const billion::Error& e) {
      EXPECT_NE(std::string(e.what()).find("fuzzed template"), std::string::npos) << e.what();
    }
  }
}
