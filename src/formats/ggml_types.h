// The ggml tensor types that GGUF files name: id, name, elements per block and bytes per block.
// Every type is listed so that any GGUF file can be inspected, even one the engine cannot run.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace billion {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41,
};

struct GgmlTypeTraits {
  GgmlType type;
  const char* name;
  uint32_t block_elements;  // elements per block (1 for plain types)
  uint32_t block_bytes;     // bytes per block
};

// nullopt for an id no ggml release defines (or one that was removed).
std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t id);
const char* ggml_type_name(GgmlType type);
// Bytes of a row of `elements` values; the caller has checked divisibility by the block size.
size_t ggml_row_bytes(GgmlType type, uint64_t elements);

}  // namespace billion
