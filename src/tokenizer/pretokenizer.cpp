// Pre-tokenizers (see pretokenizer.h). Split semantics follow HF tokenizers: a pattern's matches
// and the text between them form alternating segments; the behaviour decides which are kept and
// how they join; empty pieces are dropped; each piece is matched on its own (look-arounds and
// anchors never see a neighbouring piece).
#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/utf8.h"

namespace billion {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kArcade100kPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kO200kPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

void PreTokenized::reset(std::string_view input) {
  text.assign(input);
  spans.clear();
  if (!text.empty()) spans.push_back({0, static_cast<uint32_t>(text.size())});
}

// ---------------------------------------------------------------------------------------------
// PCRE2

namespace {

// One match-data block and JIT stack per thread, shared by every pattern: pcre2_match needs
// writable state, and tokenizers are used from many threads at once.
struct MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  MatchState() {
    data = pcre2_match_data_create(1, nullptr);  // only the whole match is needed
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    if (context && jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchState() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

Regex::Regex(std::string_view pattern, const std::string& where) : pattern_(pattern), where_(where) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // MULTILINE: HF compiles with Oniguruma's Ruby syntax, where ^ and $ are line anchors.
  const uint32_t flags = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_MULTILINE;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), flags, &error, &offset, nullptr);
  if (!code_) fail(where, "bad pre-tokenizer regex {} at offset {}: {}", printable(pattern), offset, pcre2_message(error));
  pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // failure is fine: the interpreter is used then
}

Regex::~Regex() { pcre2_code_free(code_); }

bool Regex::find(std::string_view subject, size_t start, size_t& match_begin, size_t& match_end) const {
  auto& state = match_state();
  auto subject_ptr = reinterpret_cast<PCRE2_SPTR>(subject.data());
  int rc = pcre2_match(code_, subject_ptr, subject.size(), start, 0, state.data, state.context);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT) {
    // Pathological input for the JIT: the interpreter uses heap memory instead.
    rc = pcre2_match(code_, subject_ptr, subject.size(), start, PCRE2_NO_JIT, state.data, nullptr);
  }
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) fail(where_, "regex {} failed on {}: {}", printable(pattern_), printable(subject), pcre2_message(rc));
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
  match_begin = ovector[0];
  match_end = ovector[1];
  return true;
}

// ---------------------------------------------------------------------------------------------
// Steps

namespace {

using Span = PreTokenized::Span;

struct Segment {
  uint32_t begin, end;
  bool is_match;
};

// Appends the non-empty pieces of `segments` (offsets relative to `base`) as `behavior` says.
void emit_segments(std::vector<Segment>& segs, SplitBehavior behavior, uint32_t base, std::vector<Span>& out) {
  thread_local std::vector<Segment> joined;
  joined.clear();
  switch (behavior) {
    case SplitBehavior::Removed:
      for (const auto& s : segs)
        if (!s.is_match) joined.push_back(s);
      break;
    case SplitBehavior::Isolated:
      joined = segs;
      break;
    case SplitBehavior::MergedWithPrevious: {
      bool previous_match = false;
      for (const auto& s : segs) {
        if (s.is_match && !previous_match && !joined.empty()) joined.back().end = s.end;
        else joined.push_back(s);
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool previous_match = false;  // of the segment to the right
      for (size_t k = segs.size(); k-- > 0;) {
        const auto& s = segs[k];
        if (s.is_match && !previous_match && !joined.empty()) joined.back().begin = s.begin;
        else joined.push_back(s);
        previous_match = s.is_match;
      }
      std::reverse(joined.begin(), joined.end());
      break;
    }
    case SplitBehavior::Contiguous: {
      bool previous_match = false;
      for (const auto& s : segs) {
        if (s.is_match == previous_match && !joined.empty()) joined.back().end = s.end;
        else joined.push_back(s);
        previous_match = s.is_match;
      }
      break;
    }
  }
  for (const auto& s : joined)
    if (s.end > s.begin) out.push_back({base + s.begin, base + s.end});
}

class SplitStep final : public PreTokenizer {
 public:
  SplitStep(std::string_view pattern, SplitBehavior behavior, bool invert, const std::string& where)
      : regex_(pattern, where), behavior_(behavior), invert_(invert) {}

  void apply(PreTokenized& p) const override {
    thread_local std::vector<Span> out;
    thread_local std::vector<Segment> segs;
    out.clear();
    for (const Span& span : p.spans) {
      const std::string_view piece = p.piece(span);
      segs.clear();
      size_t pos = 0, previous_end = 0, begin = 0, end = 0;
      while (pos <= piece.size() && regex_.find(piece, pos, begin, end)) {
        if (begin > previous_end) segs.push_back({uint32_t(previous_end), uint32_t(begin), false});
        segs.push_back({uint32_t(begin), uint32_t(end), true});
        previous_end = end;
        if (end > begin) {
          pos = end;
        } else {  // empty match: step over one character so the search moves on
          if (begin >= piece.size()) break;
          pos = begin + std::min<size_t>(utf8_sequence_length(static_cast<uint8_t>(piece[begin])), piece.size() - begin);
        }
      }
      if (previous_end < piece.size()) segs.push_back({uint32_t(previous_end), uint32_t(piece.size()), false});
      if (invert_)
        for (auto& s : segs) s.is_match = !s.is_match;
      emit_segments(segs, behavior_, span.begin, out);
    }
    p.spans.swap(out);
  }

 private:
  Regex regex_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelStep final : public PreTokenizer {
 public:
  ByteLevelStep(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) split_ = std::make_unique<SplitStep>(kGpt2Pattern, SplitBehavior::Isolated, false, "ByteLevel");
  }

  void apply(PreTokenized& p) const override {
    if (add_prefix_space_) {
      // HF prepends the space to every current piece that lacks one, not just the first.
      bool needed = false;
      for (const Span& s : p.spans) needed |= p.text[s.begin] != ' ';
      if (needed) {
        std::string text;
        text.reserve(p.text.size() + p.spans.size());
        for (Span& s : p.spans) {
          const std::string_view piece = p.piece(s);
          const auto begin = static_cast<uint32_t>(text.size());
          if (piece.front() != ' ') text += ' ';
          text += piece;
          s = {begin, static_cast<uint32_t>(text.size())};
        }
        p.text.swap(text);
      }
    }
    if (split_) split_->apply(p);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<SplitStep> split_;
};

class SequenceStep final : public PreTokenizer {
 public:
  explicit SequenceStep(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void apply(PreTokenized& p) const override {
    for (const auto& step : steps_) step->apply(p);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

SplitBehavior parse_behavior(const nlohmann::json& j, const std::string& file) {
  const std::string name = j.is_string() ? j.get<std::string>() : "";
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail(file, "pre_tokenizer: unknown split behavior {}", j.dump());
}

bool json_bool(const nlohmann::json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

}  // namespace

std::string regex_escape(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u)) out += '\\';
    out += c;
  }
  return out;
}

std::unique_ptr<PreTokenizer> make_split(std::string_view regex_pattern, SplitBehavior behavior, bool invert,
                                         const std::string& where) {
  return std::make_unique<SplitStep>(regex_pattern, behavior, invert, where);
}

std::unique_ptr<PreTokenizer> make_byte_level(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevelStep>(add_prefix_space, use_regex);
}

std::unique_ptr<PreTokenizer> make_sequence(std::vector<std::unique_ptr<PreTokenizer>> steps) {
  if (steps.size() == 1) return std::move(steps.front());
  return std::make_unique<SequenceStep>(std::move(steps));
}

std::unique_ptr<PreTokenizer> make_regex_sequence(const std::vector<std::string>& patterns, const std::string& where) {
  std::vector<std::unique_ptr<PreTokenizer>> steps;
  for (const auto& p : patterns) steps.push_back(make_split(p, SplitBehavior::Isolated, false, where));
  return make_sequence(std::move(steps));
}

std::unique_ptr<PreTokenizer> pretokenizer_from_json(const nlohmann::json& j, const std::string& file) {
  if (j.is_null()) return nullptr;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail(file, "pre_tokenizer: expected an object with a \"type\", got {}", j.dump().substr(0, 200));
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& step : j.value("pretokenizers", nlohmann::json::array()))
      if (auto s = pretokenizer_from_json(step, file)) steps.push_back(std::move(s));
    return std::make_unique<SequenceStep>(std::move(steps));
  }
  if (type == "ByteLevel") return make_byte_level(json_bool(j, "add_prefix_space", true), json_bool(j, "use_regex", true));
  if (type == "Split") {
    const auto& pattern = j.value("pattern", nlohmann::json());
    std::string regex;
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) regex = pattern["Regex"].get<std::string>();
    else if (pattern.contains("String") && pattern["String"].is_string()) regex = regex_escape(pattern["String"].get<std::string>());
    else fail(file, "pre_tokenizer Split: pattern must be {{\"Regex\": ...}} or {{\"String\": ...}}, got {}", pattern.dump());
    return make_split(regex, parse_behavior(j.value("behavior", nlohmann::json("Isolated")), file), json_bool(j, "invert", false), file);
  }
  if (type == "Digits") {
    // HF uses char::is_numeric (categories Nd, Nl, No), i.e. \p{N}.
    return make_split(R"(\p{N})", json_bool(j, "individual_digits", false) ? SplitBehavior::Isolated : SplitBehavior::Contiguous,
                      false, file);
  }
  if (type == "Punctuation") {
    // HF: ASCII punctuation or Unicode P*, each character on its own unless the behaviour joins.
    return make_split(R"([\p{P}!-/:-@\[-`{-~])", parse_behavior(j.value("behavior", nlohmann::json("Isolated")), file), false, file);
  }
  if (type == "Whitespace") return make_split(R"(\w+|[^\w\s]+)", SplitBehavior::Removed, true, file);
  if (type == "WhitespaceSplit") return make_split(R"(\s+)", SplitBehavior::Removed, false, file);
  fail(file, "pre_tokenizer type \"{}\" is not supported for byte-level BPE", type);
}

// ---------------------------------------------------------------------------------------------
// GGUF presets: which pattern list each tokenizer.ggml.pre value stands for. The lists follow
// the models' own tokenizer.json pipelines (as llama.cpp's llama-vocab.cpp tabulates them), with
// the original (?i:...) forms since PCRE2 handles them.

GgufPrePreset gguf_pre_preset(const std::string& pre, const std::string& file) {
  auto is = [&](std::initializer_list<const char*> names) {
    for (const char* n : names)
      if (pre == n) return true;
    return false;
  };
  const std::string gpt2 = kGpt2Pattern;
  const std::string cjk = "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+";
  GgufPrePreset p;
  if (pre.empty() || pre == "default") {
    p.patterns = {R"([\p{P}\$\+<=>\^~\|]+)", gpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"};
  } else if (is({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"})) {
    p.patterns = {kLlama3Pattern};
    p.ignore_merges = true;
    p.add_bos = true;
  } else if (is({"dbrx", "smaug-bpe", "chatglm-bpe", "glm4"})) {
    p.patterns = {kLlama3Pattern};
  } else if (pre == "deepseek-llm") {
    // Cased-letter ranges from DeepSeek's tokenizer.json, written as code points.
    p.patterns = {
        "[\\r\\n]",
        "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"
        "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"
        "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"
        "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
        "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
        "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
        "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"
        "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
        "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"
        "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"
        "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
        "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"
        "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
        "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"
        "\\x{1E900}-\\x{1E943}]+",
        "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
        "\\s+$",
        cjk,
        "\\p{N}+",
    };
  } else if (pre == "deepseek-coder") {
    p.patterns = {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", cjk, "\\p{N}"};
  } else if (pre == "deepseek-v3") {
    p.patterns = {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
                  R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
  } else if (pre == "falcon") {
    // Falcon's tokenizer.json: Punctuation, ByteLevel, Split([0-9]{3}) (no separate digit step:
    // " ½" stays one word, llama.cpp's falcon test expects that).
    p.patterns = {R"([\p{P}\$\+<=>\^~\|`]+)", gpt2, "[0-9][0-9][0-9]"};
  } else if (is({"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"})) {
    p.patterns = {R"(\p{N})", gpt2};
  } else if (is({"gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais", "gpt-neox", "jina-es", "jina-de", "gigachat",
                 "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code", "roberta-bpe", "exaone4", "a.x-4.0",
                 "mellum"})) {
    p.patterns = {gpt2};
  } else if (is({"qwen2", "stablelm2", "deepseek-r1-qwen", "megrez", "kormo"})) {
    p.patterns = {kArcade100kPattern};
  } else if (is({"poro-chat", "bloom", "gpt3-finnish"})) {
    p.patterns = {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"};
  } else if (pre == "viking") {
    p.patterns = {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+", R"(\p{N})"};
  } else if (pre == "tekken") {
    p.patterns = {R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
    p.ignore_merges = true;
    p.add_bos = true;
  } else if (pre == "chameleon") {
    p.patterns = {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", R"(\p{N})",
                  R"([\p{P}!-/:-@\[-`{-~])", gpt2};
    p.add_bos = true;
  } else if (is({"gpt-4o", "llama4"})) {
    p.patterns = {kO200kPattern};
  } else {
    fail(file, "tokenizer.ggml.pre \"{}\" is not a pre-tokenizer we know; refusing to guess its regex", pre);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// GPT-2 byte ↔ unicode table

namespace {

struct ByteTable {
  uint32_t to_unicode[256];
  int16_t from_unicode[324];  // every mapped code point is below 256 + 68
  ByteTable() {
    for (auto& v : from_unicode) v = -1;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      to_unicode[b] = printable ? static_cast<uint32_t>(b) : next++;
      from_unicode[to_unicode[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteTable& byte_table() {
  static const ByteTable table;
  return table;
}

}  // namespace

uint32_t byte_to_unicode(uint8_t b) { return byte_table().to_unicode[b]; }

int unicode_to_byte(uint32_t cp) { return cp < 324 ? byte_table().from_unicode[cp] : -1; }

bool byte_level_decode(std::string_view text, std::string& out) {
  out.clear();
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t before = pos;
    const uint32_t cp = decode_utf8(text, pos);
    const int b = unicode_to_byte(cp);
    if (b < 0 || (cp == 0xfffd && pos - before != 3)) return false;
    out += static_cast<char>(b);
  }
  return true;
}

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, byte_to_unicode(static_cast<uint8_t>(c)));
  return out;
}

}  // namespace billion
