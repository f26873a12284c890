// libFuzzer target: a chat template (untrusted Jinja from a model repository) either renders a
// fixed conversation or fails with a billion::Error.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string source(reinterpret_cast<const char*>(data), size);
  billion::ChatTemplateInput input;
  input.messages = {{"system", "Be brief."}, {"user", "Hi <b>there</b>"}, {"assistant", "Hello."}, {"user", "Bye"}};
  input.add_generation_prompt = true;
  input.bos_token = "<s>";
  input.eos_token = "</s>";
  std::tm fixed{};
  fixed.tm_year = 124;
  fixed.tm_mon = 8;
  fixed.tm_mday = 5;
  input.now = fixed;
  try {
    (void)billion::render_chat_template(source, input);
  } catch (const billion::Error&) {
  }
  return 0;
}
