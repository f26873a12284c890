// Byte-level BPE from GGUF metadata (tokenizer.ggml.model == "gpt2"): tokens in GPT-2's byte
// alphabet, "left right" merges, token types, special ids, and the pre-tokenizer chosen by
// tokenizer.ggml.pre. Token types follow llama.cpp: CONTROL and USER_DEFINED tokens are split out
// of the text before BPE (CONTROL only with parse_special) and stand for their own text.
#include <unordered_map>

#include "core/error.h"
#include "core/utf8.h"
#include "formats/gguf.h"
#include "tokenizer/bpe.h"

namespace billion {

namespace {

// GGUF / llama.cpp token types.
TokenKind kind_from_gguf(int64_t type) {
  switch (type) {
    case 1: return TokenKind::Normal;
    case 2: return TokenKind::Unknown;
    case 3: return TokenKind::Control;
    case 4: return TokenKind::UserDefined;
    case 5: return TokenKind::Unused;
    case 6: return TokenKind::Byte;
    default: return TokenKind::Normal;  // 0 = undefined: treat as an ordinary token
  }
}

std::optional<TokenId> id_key(const GgufFile& gguf, const char* key, size_t n) {
  auto v = gguf.uint_or(key);
  if (!v || *v >= n) return std::nullopt;  // llama.cpp ignores out-of-range special ids too
  return static_cast<TokenId>(*v);
}

}  // namespace

std::unique_ptr<Tokenizer> load_bpe_from_gguf(const GgufFile& gguf) {
  const std::string& file = gguf.path();
  const std::string model = gguf.get_string("tokenizer.ggml.model");
  if (model != "gpt2") fail(file, "tokenizer.ggml.model is \"{}\", not the byte-level BPE \"gpt2\"", model);

  BpeSpec spec;
  spec.source = file;
  spec.texts = gguf.get_string_array("tokenizer.ggml.tokens");
  const size_t n = spec.texts.size();
  if (n == 0) fail(file, "tokenizer.ggml.tokens is empty");
  std::vector<int64_t> types(n, 1);
  if (gguf.find("tokenizer.ggml.token_type")) {
    types = gguf.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != n) fail(file, "tokenizer.ggml.token_type has {} entries for {} tokens", types.size(), n);
  }

  spec.bytes.resize(n);
  spec.kinds.resize(n);
  std::unordered_map<std::string, TokenId> by_text;
  by_text.reserve(n * 2);
  for (size_t id = 0; id < n; ++id) {
    const std::string& text = spec.texts[id];
    spec.kinds[id] = kind_from_gguf(types[id]);
    const bool verbatim = spec.kinds[id] == TokenKind::Control || spec.kinds[id] == TokenKind::UserDefined;
    if (verbatim || !byte_level_decode(text, spec.bytes[id])) spec.bytes[id] = text;
    by_text.emplace(text, static_cast<TokenId>(id));
    if ((spec.kinds[id] == TokenKind::Control || spec.kinds[id] == TokenKind::UserDefined ||
         spec.kinds[id] == TokenKind::Unknown) &&
        !text.empty()) {
      AddedToken t;
      t.id = static_cast<TokenId>(id);
      t.content = text;
      t.special = spec.kinds[id] != TokenKind::UserDefined;
      spec.added.push_back(std::move(t));
    }
  }

  const auto merges = gguf.get_string_array("tokenizer.ggml.merges");
  spec.merges.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string& m = merges[r];
    const size_t space = m.find(' ', 1);
    if (space == std::string::npos) fail(file, "tokenizer.ggml.merges[{}] {} is not \"left right\"", r, printable(m));
    auto a = by_text.find(m.substr(0, space)), b = by_text.find(m.substr(space + 1));
    auto c = by_text.find(m.substr(0, space) + m.substr(space + 1));
    // llama.cpp tolerates merges whose parts are missing (they simply never apply); so do we.
    if (a == by_text.end() || b == by_text.end() || c == by_text.end()) {
      spec.merges.push_back({-1, -1, -1});  // keeps later ranks where they were
      continue;
    }
    spec.merges.push_back({a->second, b->second, c->second});
  }

  const auto pre = gguf.string_or("tokenizer.ggml.pre").value_or("default");
  GgufPrePreset preset = gguf_pre_preset(pre, file);
  spec.pre_tokenizer = make_regex_sequence(preset.patterns, file);
  spec.ignore_merges = preset.ignore_merges;

  auto& sp = spec.special;
  sp.bos = id_key(gguf, "tokenizer.ggml.bos_token_id", n);
  sp.eos = id_key(gguf, "tokenizer.ggml.eos_token_id", n);
  sp.unk = id_key(gguf, "tokenizer.ggml.unknown_token_id", n);
  sp.pad = id_key(gguf, "tokenizer.ggml.padding_token_id", n);
  sp.eot = id_key(gguf, "tokenizer.ggml.eot_token_id", n);
  if (auto eom = id_key(gguf, "tokenizer.ggml.eom_token_id", n)) sp.extra_eos.push_back(*eom);
  if (!sp.eot) {  // as llama.cpp: recognise the usual end-of-turn tokens by their text
    for (const char* name : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>"}) {
      auto it = by_text.find(name);
      if (it != by_text.end()) {
        sp.eot = it->second;
        break;
      }
    }
  }
  if (sp.eot && sp.eot != sp.eos) sp.extra_eos.push_back(*sp.eot);
  sp.add_bos = gguf.bool_or("tokenizer.ggml.add_bos_token").value_or(preset.add_bos) && sp.bos.has_value();
  sp.add_eos = gguf.bool_or("tokenizer.ggml.add_eos_token").value_or(false) && sp.eos.has_value();
  if (sp.add_bos) spec.prefix = {*sp.bos};
  if (sp.add_eos) spec.suffix = {*sp.eos};
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

}  // namespace billion
