// Byte-level BPE (GPT-2 family: GPT-2, GPT-NeoX/Pythia, SmolLM2, Llama-3, Qwen2, StableLM-2,
// DeepSeek, Falcon, StarCoder...). One engine, three sources: HF tokenizer.json (bpe_hf.cpp),
// GGUF tokenizer.ggml.* with model "gpt2" (bpe_gguf.cpp) and tiktoken rank files (tiktoken.cpp).
// The engine works on raw bytes: vocabulary strings in GPT-2's byte↔unicode alphabet are decoded
// once at load, so merges, caches and decoding never touch that alphabet again.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "formats/hf_folder.h"  // read_json_file
#include "tokenizer/normalize.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace billion {

class GgufFile;

// A token split out of the text before normalisation and BPE (HF "added_tokens", GGUF
// CONTROL/USER_DEFINED tokens).
struct AddedToken {
  TokenId id = 0;
  std::string content;
  bool special = false;  // matched only with EncodeOptions::parse_special; decode may skip it
  bool lstrip = false;   // also swallows whitespace on its left
  bool rstrip = false;   // ... and on its right
  bool single_word = false;  // only when not inside a word
};

struct BpeMerge {
  TokenId left, right, result;
};

// Everything a BpeTokenizer is built from; loaders fill it in.
struct BpeSpec {
  std::string source;  // file named in error messages
  // Indexed by id; ids with no token (holes in a rank file) have empty text and kind Unused.
  std::vector<std::string> texts;  // as the vocabulary writes them ("Ġhello", "<|im_start|>")
  std::vector<std::string> bytes;  // what each token stands for ("\x20hello")
  std::vector<TokenKind> kinds;
  // Merge rules in priority order (index = rank). Rules with equal `rank_of` share a rank
  // (tiktoken: the rank of the merged token); empty rank_of = rank is the index.
  std::vector<BpeMerge> merges;
  std::vector<int32_t> rank_of;
  bool ignore_merges = false;  // a word that is itself a token is emitted whole (Llama-3, tiktoken)
  std::vector<AddedToken> added;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  SpecialTokens special;
  // What add_special puts around the text (post-processor / add_bos_token / add_eos_token).
  std::vector<TokenId> prefix, suffix;
};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeSpec spec);
  ~BpeTokenizer() override;

  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const override;
  std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const override;
  std::string token_bytes(TokenId id) const override;
  const std::string& token_text(TokenId id) const override;
  TokenKind token_kind(TokenId id) const override;
  size_t vocab_size() const override { return texts_.size(); }
  std::optional<TokenId> token_id(std::string_view text) const override;
  const SpecialTokens& special_tokens() const override { return special_; }
  std::string kind() const override { return "bpe"; }

  // The words BPE sees for `text` (after added-token splitting, normalisation and
  // pre-tokenization), as raw bytes; for tests and debugging.
  std::vector<std::string> pre_tokenize(std::string_view text, bool parse_special = false) const;
  const std::string& source() const { return source_; }

 private:
  class MergeMap;
  class WordMap;
  class WordCache;
  struct Match {
    size_t begin, end;  // byte range consumed in the input (with lstrip/rstrip whitespace)
    const AddedToken* token;
  };

  void check_id(TokenId id) const;
  // Next added token at or after `from`, honouring parse_special; false if none.
  bool next_added(std::string_view text, size_t from, bool parse_special, Match& m) const;
  WordCache& thread_cache() const;
  void encode_plain(std::string_view text, std::vector<TokenId>& out, WordCache& cache) const;
  void encode_word(std::string_view word, std::vector<TokenId>& out, WordCache& cache) const;
  void merge_word(std::vector<TokenId>& symbols) const;
  void merge_word_large(std::vector<TokenId>& symbols) const;

  std::string source_;
  std::vector<std::string> texts_, bytes_;
  std::vector<TokenKind> kinds_;
  std::unique_ptr<MergeMap> merges_;
  TokenId byte_token_[256];  // id of each single-byte token, -1 if the vocabulary lacks it
  bool ignore_merges_;
  std::unordered_map<std::string, TokenId> text_to_id_;
  std::unique_ptr<WordMap> bytes_to_id_;  // normal tokens by their bytes (ignore_merges)
  std::vector<AddedToken> added_;
  // Added tokens by first byte, longest first: leftmost-longest matching as HF does.
  std::vector<std::vector<uint32_t>> added_by_byte_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  SpecialTokens special_;
  std::vector<TokenId> prefix_, suffix_;

  uint64_t serial_;  // identifies this tokenizer's per-thread word caches (never reused)
};

// Loaders. `folder` supplies tokenizer_config.json / generation_config.json when present.
std::unique_ptr<Tokenizer> load_bpe_from_hf_json(const nlohmann::json& tokenizer_json, const std::string& folder,
                                                 const std::string& json_path);
std::unique_ptr<Tokenizer> load_bpe_from_gguf(const GgufFile& gguf);
// True when `tokenizer_json` is a byte-level BPE (model BPE with a ByteLevel pre-tokenizer or
// decoder), i.e. ours rather than SentencePiece-style.
bool is_byte_level_bpe_json(const nlohmann::json& tokenizer_json);

// Shared by the HF and tiktoken loaders: special-token ids and BOS/EOS behaviour from
// tokenizer_config.json, special_tokens_map.json and generation_config.json in `folder`.
// `has_template` says whether prefix/suffix already came from a post-processor.
void apply_hf_config(BpeSpec& spec, const std::string& folder, bool has_template);

}  // namespace billion
