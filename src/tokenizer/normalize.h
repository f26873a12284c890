// Text normalizers run before pre-tokenization: HF tokenizer.json "normalizer" (NFC for
// GPT-NeoX/Pythia, none for GPT-2/SmolLM2, Sequence/Replace/Prepend/Lowercase/Strip for others)
// and the NFC that StableLM-2's Arcade100k applies. Unicode forms come from ICU. Invalid UTF-8 in
// the input is carried through byte for byte (byte-level BPE can still encode it).
#pragma once
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

namespace billion {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Replaces `out` with the normalised form of `in`.
  virtual void normalize(std::string_view in, std::string& out) const = 0;
};

enum class UnicodeForm { NFC, NFD, NFKC, NFKD };
std::unique_ptr<Normalizer> make_unicode_normalizer(UnicodeForm form);

// From tokenizer.json's "normalizer" (null → nullptr). Unsupported types: Error naming `file`.
std::unique_ptr<Normalizer> normalizer_from_json(const nlohmann::json& j, const std::string& file);

}  // namespace billion
