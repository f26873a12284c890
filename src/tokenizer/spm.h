// SentencePiece-style BPE with byte fallback (Llama-2, TinyLlama, Llama-2-chat, Baichuan): the
// loaders for its three sources (HF tokenizer.json, SentencePiece tokenizer.model, GGUF
// tokenizer.ggml.model == "llama") and the tokenizer they build.
//
// Encoding, per stretch of text between special tokens: spaces become "▁" (U+2581), a dummy "▁"
// is prepended (where and when is SpmOptions::prefix), the text is split into UTF-8 characters,
// and the adjacent pair with the best rank is merged repeatedly (a priority queue over a linked
// list of symbols, O(n log n)); characters with no token fall back to <0xNN> byte tokens.
// Ranks: tokenizer.json's merges order when loading from JSON; otherwise the merged piece's score
// (higher first, leftmost first on ties), as SentencePiece and llama.cpp do.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace billion {

class GgufFile;

// From a parsed tokenizer.json whose model is BPE with byte_fallback and whose normalizer /
// pre-tokenizer is Prepend+Replace or Metaspace (TinyLlama, Llama-2). `folder` holds
// tokenizer_config.json (special-token names, add_bos_token/add_eos_token when the JSON has no
// post-processor); it may be empty. Encodes exactly as the `tokenizers` library runs this file.
std::unique_ptr<Tokenizer> load_spm_from_hf_json(const nlohmann::json& tokenizer_json, const std::string& folder);
// From a SentencePiece tokenizer.model (BPE type). `folder` (may be empty) supplies
// tokenizer_config.json's add_bos_token/add_eos_token and added tokens. Encodes as the
// sentencepiece library does (plus BOS by default, as Llama's tokenizers add it).
std::unique_ptr<Tokenizer> load_spm_from_model_file(const std::string& path, const std::string& folder);
// From GGUF metadata with tokenizer.ggml.model == "llama"; encodes as llama.cpp's SPM tokenizer.
std::unique_ptr<Tokenizer> load_spm_from_gguf(const GgufFile& gguf);

// Where the dummy-prefix "▁" goes.
enum class SpmPrefix : uint8_t {
  Never,
  First,   // only before text that starts the input (Metaspace prepend_scheme "first")
  Always,  // before every stretch of text: at the start and after each special token
};

struct SpmOptions {
  SpmPrefix prefix = SpmPrefix::Always;
  // false = Metaspace's rule: no prefix when the text already starts with "▁" (or a space).
  // SentencePiece, llama.cpp and the HF Prepend normalizer prefix unconditionally.
  bool prefix_even_if_space = true;
  bool escape_whitespace = true;         // ' ' → "▁"
  bool remove_extra_whitespace = false;  // SentencePiece: trim, and squeeze runs of spaces
  bool split_on_metaspace = false;       // Metaspace split=true: no merge across a word start
  // After a user-defined token (always matched) the text goes on as a new stretch with its own
  // prefix (HF added tokens, llama.cpp); sentencepiece keeps one prefix for the whole input.
  bool prefix_after_user_defined = true;
  bool byte_fallback = true;             // unknown characters → <0xNN> tokens (else <unk>)
  bool fuse_unk = true;                  // consecutive <unk> outputs become one
  bool strip_decoded_space = true;       // decode drops one leading space (the dummy prefix)
  // Which tokens may be a merge result / start symbol: false = Normal, UserDefined and Unused
  // pieces only (SentencePiece); true = any token (llama.cpp looks up every token's text).
  bool merge_any_token = false;
};

// Everything a loader gathers; SpmTokenizer builds its lookup tables from it.
struct SpmModel {
  std::string source;                      // file name, for error messages
  std::vector<std::string> texts;          // token text as stored (with "▁")
  std::vector<float> scores;               // used when `merges` is empty
  std::vector<TokenKind> kinds;
  std::vector<std::pair<TokenId, TokenId>> merges;  // explicit merge order (tokenizer.json)
  SpecialTokens special;
  SpmOptions options;
};

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(SpmModel model);
  // The lookup tables point into the token strings: no copies.
  SpmTokenizer(const SpmTokenizer&) = delete;
  SpmTokenizer& operator=(const SpmTokenizer&) = delete;

  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const override;
  std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const override;
  std::string token_bytes(TokenId id) const override;
  const std::string& token_text(TokenId id) const override;
  TokenKind token_kind(TokenId id) const override;
  size_t vocab_size() const override { return texts_.size(); }
  std::optional<TokenId> token_id(std::string_view text) const override;
  const SpecialTokens& special_tokens() const override { return special_; }
  std::string kind() const override { return "spm"; }

  const SpmOptions& options() const { return options_; }
  // The rank-ordered merge rules as (left, right) → merged with rank, for tests comparing the
  // JSON merges with the score-derived ones. Sorted by (rank, left, right).
  struct MergeRule {
    TokenId left, right, merged;
    int32_t rank;
  };
  std::vector<MergeRule> merge_rules() const;

 private:
  // Open-addressing hash map (left, right) → (rank, merged): the hot lookup of the merge loop.
  class PairTable {
   public:
    struct Value {
      int32_t rank;
      TokenId merged;
    };
    void build(const std::vector<std::pair<uint64_t, Value>>& entries);
    const Value* find(TokenId left, TokenId right) const;
    template <typename F>
    void for_each(F&& f) const {
      for (size_t k = 0; k < keys_.size(); ++k)
        if (keys_[k] != kEmpty) f(keys_[k], values_[k]);
    }

   private:
    static constexpr uint64_t kEmpty = ~uint64_t{0};
    size_t slot(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
    std::vector<uint64_t> keys_;
    std::vector<Value> values_;
    int shift_ = 64;
  };

  struct Special {
    std::string_view text;  // into texts_
    TokenId id;
    bool always;  // user-defined: matched even when parse_special is off
  };

  void build_tables(std::vector<std::pair<TokenId, TokenId>> merges);
  void encode_text(std::string_view text, bool want_prefix, std::vector<TokenId>& out) const;
  void bpe(std::string_view normalized, std::vector<TokenId>& out) const;
  void emit_unknown(std::string_view bytes, std::vector<TokenId>& out) const;
  TokenId char_id(std::string_view normalized, size_t pos, size_t len) const;
  [[noreturn]] void bad_id(TokenId id) const;

  std::string source_;
  std::vector<std::string> texts_;
  std::vector<float> scores_;
  std::vector<TokenKind> kinds_;
  std::vector<std::string> bytes_;  // what each token decodes to
  SpecialTokens special_;
  SpmOptions options_;

  std::unordered_map<std::string_view, TokenId> by_text_;  // every token, first id wins
  std::array<TokenId, 128> ascii_ids_{};                    // start symbols, ASCII
  std::unordered_map<uint32_t, TokenId> char_ids_;          // start symbols, other code points
  std::array<TokenId, 256> byte_ids_{};                     // <0xNN> tokens (-1: none)
  PairTable pairs_;
  std::vector<Special> specials_;     // longest first
  std::array<bool, 256> special_first_byte_{};
  bool has_always_specials_ = false;
};

}  // namespace billion
