// The tokenizer interface every model uses: text ↔ token ids, exactly as the model was trained.
// Implementations: byte-level BPE (GPT-2 style, from tokenizer.json, tiktoken rank files or GGUF
// `gpt2`), SentencePiece-style BPE with byte fallback (Llama-2, from tokenizer.json,
// tokenizer.model or GGUF `llama`). Construction goes through load_tokenizer_* below.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace billion {

class GgufFile;

using TokenId = int32_t;

struct EncodeOptions {
  // Prepend BOS (and append EOS) when the tokenizer's own configuration says so
  // (HF add_bos_token / GGUF tokenizer.ggml.add_bos_token). false = never add them.
  bool add_special = true;
  // Treat special-token text such as "<|im_start|>" in the input as that special token.
  // Off by default: user text is never silently turned into control tokens.
  bool parse_special = false;
};

enum class TokenKind : uint8_t { Normal, Unknown, Control, UserDefined, Unused, Byte };

struct SpecialTokens {
  std::optional<TokenId> bos, eos, unk, pad, eot;
  std::vector<TokenId> extra_eos;  // further ids that end generation (e.g. <|eom_id|>)
  bool add_bos = false;
  bool add_eos = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const = 0;
  // Concatenated bytes of the tokens' pieces (SentencePiece: "▁" → " ", leading space of the
  // first piece removed as HF does when skip_special_tokens... see implementation notes).
  virtual std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const = 0;
  // Raw bytes a single token stands for (may be part of a UTF-8 character).
  virtual std::string token_bytes(TokenId id) const = 0;
  // The token's text as stored in the vocabulary (for --pieces and vocabulary comparison).
  virtual const std::string& token_text(TokenId id) const = 0;
  virtual TokenKind token_kind(TokenId id) const = 0;
  virtual size_t vocab_size() const = 0;
  virtual std::optional<TokenId> token_id(std::string_view text) const = 0;
  virtual const SpecialTokens& special_tokens() const = 0;
  // "bpe" (byte-level), "spm" (SentencePiece-style), for compatibility checks and `info`.
  virtual std::string kind() const = 0;
};

// Emits text as tokens arrive without ever splitting a UTF-8 character: bytes of an incomplete
// character are held back until the rest arrives (or flushed as U+FFFD at the end).
// Output is always valid UTF-8: bytes that can never form a character come out as U+FFFD.
// Until the first non-empty piece, tokens go through decode() so a tokenizer's start-of-text rule
// (SentencePiece's dummy-prefix space) applies; after that, token_bytes().
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool skip_special = false)
      : tokenizer_(tokenizer), skip_special_(skip_special) {}
  std::string push(TokenId id);  // the complete characters now available
  std::string finish();          // whatever is left (invalid trailing bytes as U+FFFD); resets

 private:
  std::string take(bool final);

  const Tokenizer& tokenizer_;
  bool skip_special_ = false;
  std::string pending_;
  bool first_ = true;
};

// From a Hugging Face model folder: tokenizer.json if present, else tokenizer.model
// (SentencePiece protobuf or tiktoken ranks), else *.tiktoken; with tokenizer_config.json for
// added/special tokens and add_bos.
std::unique_ptr<Tokenizer> load_tokenizer_from_folder(const std::string& folder);
// From GGUF metadata tokenizer.ggml.* (model "llama" or "gpt2"; pre-tokenizer from
// tokenizer.ggml.pre).
std::unique_ptr<Tokenizer> load_tokenizer_from_gguf(const GgufFile& gguf);
// Any of: a .gguf file, a model folder, or a tokenizer file itself (tokenizer.json,
// tokenizer.model, *.tiktoken; its folder supplies tokenizer_config.json).
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace billion
