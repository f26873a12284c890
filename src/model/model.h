// A loaded model: architecture, weights (memory-mapped), decoder, tokenizer, end-of-sequence
// ids, chat template. One object serves generate, chat, bench, speculate and fine-tuning.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "formats/hf_folder.h"
#include "model/decoder.h"
#include "tokenizer/tokenizer.h"

namespace billion {

class GgufFile;
class SafetensorsCheckpoint;

struct LoadOptions {
  LoadQuantization quantization = LoadQuantization::None;
  // Re-lay Q4_0, Q8_0, Q4_K and Q6_K matrices at load in the interleaved layout when the active
  // kernel table has fast kernels for it (kernels/interleave.h; the AVX2 and AVX-512 tables do
  // for all four, the scalar one for none; the AVX2 one also for F16 and BF16, in runs of four
  // rows), and Q4_1 and a tied Q8_0 output in ggml's order (WeightLayout::Interleaved16Ggml).
  // Same values; for Q4_0/Q8_0 a different float summation order, for the others the same bits. False keeps the file's layout (A/B benchmarks,
  // bench_peer --no-interleave).
  bool interleave_weights = true;
  // With interleave_weights: copy every other matrix the CPU kernels stream into owned huge-page
  // memory too (model/weights.h); false leaves those in the file's pages (bench_peer --file-pages).
  bool copy_weights = true;
};

class Model {
 public:
  // `path` is a .gguf file or a Hugging Face model folder (config.json + safetensors).
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& options = {});
  ~Model();

  const std::string& path() const { return path_; }
  const std::string& format() const { return format_; }  // "gguf" or "safetensors"
  const ArchitectureSpec& spec() const { return decoder_->spec(); }
  Decoder& decoder() { return *decoder_; }
  const Decoder& decoder() const { return *decoder_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // Every id that ends generation: the generation config's, the tokenizer's eos and eot.
  const std::vector<TokenId>& stop_ids() const { return stop_ids_; }
  const std::optional<std::string>& chat_template() const { return chat_template_; }
  const GenerationConfig& generation_config() const { return generation_config_; }
  // Bytes of the weight files (what the memory map can page in).
  uint64_t file_bytes() const { return file_bytes_; }
  std::string bos_text() const;
  std::string eos_text() const;

 private:
  Model() = default;
  std::string path_, format_;
  std::unique_ptr<GgufFile> gguf_;
  std::unique_ptr<SafetensorsCheckpoint> checkpoint_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<TokenId> stop_ids_;
  std::optional<std::string> chat_template_;
  GenerationConfig generation_config_;
  uint64_t file_bytes_ = 0;
};

}  // namespace billion
