// Writing a model as a GGUF file with its matrices in one weight type (`billion quantize`):
// from a GGUF file (re-quantizing each matrix) or a Hugging Face folder (converting names and
// layouts the way llama.cpp's convert_hf_to_gguf does: q/k row permutation for llama, rope_freqs
// for llama3 scaling, fused QKV reordered for GPT-NeoX, stacked q/k norms for StableLM, and the
// tokenizer as tokenizer.ggml.* when it is a byte-level BPE tokenizer.json). Vectors (norms,
// biases, rope_freqs) stay F32; every matrix, token_embd included, takes the target type, as
// llama.cpp's `--outtype` does. Output is streamed one tensor at a time.
#pragma once
#include <cstdint>
#include <string>

#include "formats/ggml_types.h"

namespace billion {

struct QuantizeFileOptions {
  GgmlType type = GgmlType::Q8_0;  // F16, Q8_0, Q4_0 or Q4_1 (F32 too: a float reference file)
  int threads = 0;                 // 0 = all cores
  std::string pre_tokenizer;       // HF input: tokenizer.ggml.pre (empty: "default")
};

struct QuantizeFileReport {
  std::string input_format;   // "gguf" or "safetensors"
  size_t tensors = 0;         // tensors written
  size_t converted = 0;       // of those, matrices written in the target type
  uint64_t output_bytes = 0;
};

// "q8_0", "q4_0", "q4_1", "f16" (case-insensitive); anything else is an Error listing them.
GgmlType parse_quantize_type(const std::string& text);

// Reads `input` (.gguf or model folder) and writes `output` (.gguf). Throws billion::Error
// naming the file and the problem (unsupported architecture or tokenizer, unwritable output).
QuantizeFileReport quantize_model_file(const std::string& input, const std::string& output, const QuantizeFileOptions& options);

}  // namespace billion
