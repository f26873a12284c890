// libFuzzer target: any byte string given to the GGUF reader is either a valid file or a
// billion::Error; ASan/UBSan catch anything else.
#include <cstdint>
#include <span>

#include "core/error.h"
#include "formats/gguf.h"
#include "model/architecture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = billion::GgufFile::from_memory(std::span<const uint8_t>(data, size), "fuzz.gguf");
    for (const auto& [key, value] : f->metadata()) (void)value.to_string();
    try {
      (void)billion::spec_from_gguf(*f);
    } catch (const billion::Error&) {
    }
  } catch (const billion::Error&) {
  }
  return 0;
}
