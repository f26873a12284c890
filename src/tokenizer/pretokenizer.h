// Pre-tokenization for byte-level BPE: splitting normalised text into the "words" that BPE merges
// never cross. Mirrors the Hugging Face `tokenizers` pre-tokenizers that byte-level models use
// (Sequence, Split with Regex/String + behaviour, ByteLevel, Digits, Punctuation, Whitespace),
// read generically from tokenizer.json, plus the per-`tokenizer.ggml.pre` regex lists GGUF files
// rely on. Regexes are PCRE2 (UTF + UCP, JIT when available) so \p{L}/\p{N} follow Unicode.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

struct pcre2_real_code_8;

namespace billion {

// A text cut into pieces: byte ranges [begin, end) of `text`, in order, non-empty.
struct PreTokenized {
  struct Span {
    uint32_t begin, end;
  };
  std::string text;
  std::vector<Span> spans;

  std::string_view piece(const Span& s) const { return std::string_view(text).substr(s.begin, s.end - s.begin); }
  // Starts over with `input` as a single piece (none when empty).
  void reset(std::string_view input);
};

// A compiled PCRE2 pattern. Subjects may hold invalid UTF-8 (PCRE2_MATCH_INVALID_UTF): invalid
// bytes simply never match a character class, so byte-level BPE still sees every input byte.
class Regex {
 public:
  // `where` names the file the pattern came from, for the error message of a bad pattern.
  Regex(std::string_view pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Finds the first match at or after byte `start`; false when there is none.
  bool find(std::string_view subject, size_t start, size_t& match_begin, size_t& match_end) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  std::string where_;
  pcre2_real_code_8* code_ = nullptr;
};

// A literal string as a PCRE2 pattern (HF Split/Replace with {"String": ...}).
std::string regex_escape(std::string_view literal);

// How the pieces a pattern matches are kept (HF SplitDelimiterBehavior).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Refines the pieces of `p` in place.
  virtual void apply(PreTokenized& p) const = 0;
};

// The GPT-2 pattern HF's ByteLevel pre-tokenizer uses when use_regex is true.
extern const char* const kGpt2Pattern;

std::unique_ptr<PreTokenizer> make_split(std::string_view regex_pattern, SplitBehavior behavior, bool invert,
                                         const std::string& where);
std::unique_ptr<PreTokenizer> make_byte_level(bool add_prefix_space, bool use_regex);
std::unique_ptr<PreTokenizer> make_sequence(std::vector<std::unique_ptr<PreTokenizer>> steps);
// Each pattern splits every piece in turn, matches and the text between kept as pieces: the
// semantics of llama.cpp's regex lists and of a Sequence of HF Split(Isolated).
std::unique_ptr<PreTokenizer> make_regex_sequence(const std::vector<std::string>& patterns, const std::string& where);

// From tokenizer.json's "pre_tokenizer" (null → nullptr: the whole text is one word).
// Unknown types are an Error naming `file`.
std::unique_ptr<PreTokenizer> pretokenizer_from_json(const nlohmann::json& j, const std::string& file);

// What a GGUF `tokenizer.ggml.pre` value implies (llama.cpp's per-model tables).
struct GgufPrePreset {
  std::vector<std::string> patterns;
  bool ignore_merges = false;  // whole words found in the vocabulary skip BPE (Llama-3, Tekken)
  bool add_bos = false;        // default when tokenizer.ggml.add_bos_token is absent
};
// Error naming `file` for a value we do not know (silently wrong ids are worse than no model).
GgufPrePreset gguf_pre_preset(const std::string& pre, const std::string& file);

// Well-known pre-tokenizer patterns, shared with the tiktoken loader.
extern const char* const kLlama3Pattern;      // Llama-3, cl100k_base
extern const char* const kArcade100kPattern;  // StableLM-2 / Qwen2: digits one at a time
extern const char* const kO200kPattern;       // GPT-4o, Llama-4

// GPT-2's byte ↔ printable-character table: byte b is written as the code point
// byte_to_unicode(b) in vocabularies (space → "Ġ", newline → "Ċ").
uint32_t byte_to_unicode(uint8_t b);
// The byte a vocabulary character stands for, or -1 if the character is not in the table.
int unicode_to_byte(uint32_t code_point);
// "Ġhello" → " hello". Returns false (and leaves `out` unspecified) when a character is outside
// the table: such strings (added tokens like "<|im_start|>" are fine, they are all-ASCII-printable;
// but "<｜begin▁of▁sentence｜>" is not) stand for their own UTF-8 bytes.
bool byte_level_decode(std::string_view text, std::string& out);
std::string byte_level_encode(std::string_view bytes);

}  // namespace billion
