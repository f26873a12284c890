// libFuzzer target: a tokenizer.json document (untrusted, from a downloaded repository) is either
// loaded — and then encodes and decodes a fixed text without crashing — or refused with a
// billion::Error.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/spm.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json doc = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;
  for (int kind = 0; kind < 2; ++kind) {
    try {
      auto tokenizer = kind == 0 ? billion::load_bpe_from_hf_json(doc, "/nonexistent", "fuzz/tokenizer.json")
                                 : billion::load_spm_from_hf_json(doc, "/nonexistent");
      for (const char* text : {"Hello world! 123  \t\n<s> <|im_start|>", "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80", "\xff\xfe"}) {
        auto ids = tokenizer->encode(text, {.add_special = true, .parse_special = true});
        (void)tokenizer->decode(ids);
        billion::StreamingDecoder stream(*tokenizer);
        for (auto id : ids) (void)stream.push(id);
        (void)stream.finish();
      }
    } catch (const billion::Error&) {
    }
  }
  return 0;
}
