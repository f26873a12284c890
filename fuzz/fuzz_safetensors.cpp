// libFuzzer target for the safetensors header parser and its validation of offsets.
#include <cstdint>
#include <span>

#include "core/error.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = billion::SafetensorsFile::from_memory(std::span<const uint8_t>(data, size), "fuzz.safetensors");
    // Touch each tensor's first and last byte, so a view past the input would fault under ASan;
    // the volatile store keeps the reads.
    uint64_t sum = 0;
    for (const auto& [name, t] : f->tensors())
      if (!t.bytes.empty()) sum += t.bytes[0] + t.bytes[t.bytes.size() - 1];
    volatile uint64_t sink = sum;
    (void)sink;
  } catch (const billion::Error&) {
  }
  return 0;
}
