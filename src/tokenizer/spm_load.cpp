// The three loaders of the SentencePiece-style tokenizer (see spm.h): each turns its source into
// an SpmModel (vocabulary, kinds, merge order, special ids, options) and checks it, so that a bad
// file is an Error naming the file and never a crash later in encode().
//
// Behaviour per source, and why:
//  * tokenizer.json: what the `tokenizers` library does with the file (that is what HF
//    transformers 4.x ran and what the reference fixtures use): the Prepend("▁") normalizer puts
//    the dummy prefix before every stretch of text, including after special tokens; a Metaspace
//    pre-tokenizer follows its prepend_scheme; BOS/EOS come from the TemplateProcessing
//    post-processor. (transformers 5 rebuilds LlamaTokenizer with Metaspace "first" when
//    legacy=false; that changes text starting with a space or following a special token.)
//  * tokenizer.model: the sentencepiece library (score-ordered merges, unconditional dummy prefix,
//    its normalizer flags), plus BOS per tokenizer_config.json (Llama default: add it).
//  * GGUF: llama.cpp's SPM tokenizer: any token may be a merge result, " " prepended to every
//    stretch of text when tokenizer.ggml.add_space_prefix (default true), BOS by default.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/utf8.h"
#include "formats/gguf.h"
#include "formats/hf_folder.h"
#include "tokenizer/sentencepiece_model.h"
#include "tokenizer/spm.h"

namespace billion {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kMeta = "\xe2\x96\x81";

std::optional<TokenId> find_token(const std::vector<std::string>& texts, const std::optional<std::string>& text) {
  if (!text) return std::nullopt;
  for (size_t k = 0; k < texts.size(); ++k)
    if (texts[k] == *text) return static_cast<TokenId>(k);
  return std::nullopt;
}

std::optional<TokenId> checked_id(int64_t id, size_t n) {
  if (id < 0 || static_cast<uint64_t>(id) >= n) return std::nullopt;
  return static_cast<TokenId>(id);
}

// tokenizer_config.json's added_tokens_decoder entries past the end of the vocabulary (e.g. a
// "<pad>" added to Llama-2's 32000 pieces) are appended; ids must continue without gaps.
void append_config_tokens(const std::string& folder, SpmModel& m) {
  if (folder.empty()) return;
  const std::string path = folder + "/tokenizer_config.json";
  if (!fs::exists(path)) return;
  const json doc = read_json_file(path);
  if (!doc.is_object() || !doc.contains("added_tokens_decoder") || !doc["added_tokens_decoder"].is_object()) return;
  std::map<int64_t, std::pair<std::string, bool>> extra;  // ordered by id, not by key text
  for (const auto& [key, value] : doc["added_tokens_decoder"].items()) {
    int64_t id = -1;
    try {
      size_t used = 0;
      id = std::stoll(key, &used);
      if (used != key.size()) id = -1;
    } catch (const std::exception&) {
    }
    const auto content = special_token_text(value);
    if (id < 0 || !content) fail(path, "added_tokens_decoder entry {} is malformed", printable(key));
    const bool special = value.is_object() && value.value("special", false);
    if (static_cast<uint64_t>(id) >= m.texts.size()) extra[id] = {*content, special};
  }
  for (const auto& [id, token] : extra) {
    if (static_cast<uint64_t>(id) != m.texts.size())
      fail(path, "added token id {} leaves a gap after the vocabulary's {} tokens", id, m.texts.size());
    m.texts.push_back(token.first);
    m.scores.push_back(0.0f);
    m.kinds.push_back(token.second ? TokenKind::Control : TokenKind::UserDefined);
  }
}

// ---- tokenizer.json --------------------------------------------------------------------------

// Reads the normalizer / pre-tokenizer / decoder of a Llama-style tokenizer.json into options.
// Anything else there would change the ids, so it is refused rather than ignored.
void read_pipeline(const json& j, const std::string& where, SpmOptions& o) {
  o.prefix = SpmPrefix::Never;
  o.prefix_even_if_space = true;
  o.escape_whitespace = false;
  o.strip_decoded_space = false;

  std::vector<const json*> stack;
  auto flatten = [&](const json& node, const char* list_key, std::vector<const json*>& items) {
    stack.assign(1, &node);
    while (!stack.empty()) {
      const json* n = stack.back();
      stack.pop_back();
      if (n->is_null()) continue;
      if (!n->is_object()) fail(where, "{} entry is not an object", list_key);
      if (n->value("type", "") == "Sequence") {
        // (a pointer, not `cond ? (*n)[key] : json()`, which would copy the list)
        const json* list = n->contains(list_key) ? &(*n)[list_key] : nullptr;
        if (!list || !list->is_array()) fail(where, "Sequence without a {} list", list_key);
        for (auto it = list->rbegin(); it != list->rend(); ++it) stack.push_back(&*it);
      } else {
        items.push_back(n);
      }
    }
  };

  std::vector<const json*> items;
  if (j.contains("normalizer")) flatten(j["normalizer"], "normalizers", items);
  for (const json* n : items) {
    const std::string type = n->value("type", "");
    if (type == "Prepend") {
      if (n->value("prepend", "") != kMeta) fail(where, "Prepend normalizer must prepend \"\\u2581\"");
      o.prefix = SpmPrefix::Always;
      o.prefix_even_if_space = true;
    } else if (type == "Replace" && n->contains("pattern") && (*n)["pattern"].is_object() &&
               (*n)["pattern"].value("String", "") == " " && n->value("content", "") == kMeta) {
      o.escape_whitespace = true;
    } else {
      fail(where, "normalizer {} is not supported by the SentencePiece-style tokenizer", printable(n->dump(), 120));
    }
  }

  items.clear();
  if (j.contains("pre_tokenizer")) flatten(j["pre_tokenizer"], "pretokenizers", items);
  for (const json* n : items) {
    if (n->value("type", "") != "Metaspace" || n->value("replacement", std::string(kMeta)) != kMeta)
      fail(where, "pre-tokenizer {} is not supported by the SentencePiece-style tokenizer", printable(n->dump(), 120));
    o.escape_whitespace = true;
    o.prefix_even_if_space = false;  // Metaspace does not prepend to text already starting with ▁
    std::string scheme = n->value("prepend_scheme", "");
    if (scheme.empty()) scheme = n->value("add_prefix_space", true) ? "always" : "never";
    if (scheme == "always") o.prefix = SpmPrefix::Always;
    else if (scheme == "first") o.prefix = SpmPrefix::First;
    else if (scheme == "never") o.prefix = SpmPrefix::Never;
    else fail(where, "unknown Metaspace prepend_scheme {}", printable(scheme));
    o.split_on_metaspace = n->value("split", true);
  }

  items.clear();
  if (j.contains("decoder")) flatten(j["decoder"], "decoders", items);
  for (const json* n : items) {
    const std::string type = n->value("type", "");
    if (type == "Strip" && n->value("content", "") == " " && n->value("start", 0) >= 1) o.strip_decoded_space = true;
    if (type == "Metaspace" && o.prefix != SpmPrefix::Never) o.strip_decoded_space = true;
  }
}

std::unique_ptr<Tokenizer> load_from_json(const json& j, const std::string& folder, const std::string& where) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail(where, "no \"model\" object");
  const json& model = j["model"];
  if (model.value("type", "") != "BPE") fail(where, "model type is not BPE");
  if (model.value("ignore_merges", false)) fail(where, "ignore_merges is not supported for SentencePiece-style BPE");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && model[key] != "")
      fail(where, "model.{} is not supported for SentencePiece-style BPE", key);
  }

  SpmModel m;
  m.source = where;
  read_pipeline(j, where, m.options);
  m.options.byte_fallback = model.value("byte_fallback", false);
  m.options.fuse_unk = model.value("fuse_unk", false);
  m.options.merge_any_token = true;  // HF's BPE looks every character up in the whole vocabulary

  const json& vocab = model.contains("vocab") ? model["vocab"] : json();
  if (!vocab.is_object() || vocab.empty()) fail(where, "model.vocab must be a non-empty object");
  const size_t limit = vocab.size() + (j.contains("added_tokens") && j["added_tokens"].is_array() ? j["added_tokens"].size() : 0);
  std::vector<char> seen;
  auto place = [&](int64_t id, const std::string& text, const char* what) {
    if (id < 0 || static_cast<uint64_t>(id) >= limit) fail(where, "{} {} has id {} outside 0..{}", what, printable(text), id, limit - 1);
    if (m.texts.size() <= static_cast<size_t>(id)) {
      m.texts.resize(id + 1);
      seen.resize(id + 1, 0);
    }
    m.texts[id] = text;
    seen[id] = 1;
  };
  for (const auto& [text, id] : vocab.items()) {
    if (!id.is_number_integer()) fail(where, "vocab entry {} has no integer id", printable(text));
    if (static_cast<size_t>(id.get<int64_t>()) < seen.size() && id.get<int64_t>() >= 0 && seen[id.get<int64_t>()])
      fail(where, "vocab id {} is used twice", id.get<int64_t>());
    place(id.get<int64_t>(), text, "vocab entry");
  }
  std::vector<std::pair<TokenId, bool>> added;  // (id, special)
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& t : j["added_tokens"]) {
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") || !t["content"].is_string())
        fail(where, "malformed added_tokens entry {}", printable(t.dump(), 120));
      place(t["id"].get<int64_t>(), t["content"].get<std::string>(), "added token");
      added.emplace_back(static_cast<TokenId>(t["id"].get<int64_t>()), t.value("special", false));
    }
  }
  for (size_t k = 0; k < seen.size(); ++k)
    if (!seen[k]) fail(where, "token id {} is missing from the vocabulary", k);
  const size_t n = m.texts.size();
  m.kinds.assign(n, TokenKind::Normal);
  m.scores.assign(n, 0.0f);
  if (m.options.byte_fallback) {
    for (size_t k = 0; k < n; ++k) {
      const std::string& t = m.texts[k];
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && isxdigit(static_cast<unsigned char>(t[3])) &&
          isxdigit(static_cast<unsigned char>(t[4])))
        m.kinds[k] = TokenKind::Byte;
    }
  }
  for (const auto& [id, special] : added) m.kinds[id] = special ? TokenKind::Control : TokenKind::UserDefined;

  // Merges: "a b" strings (older files) or ["a", "b"] pairs.
  std::unordered_map<std::string_view, TokenId> ids;
  ids.reserve(n);
  for (size_t k = 0; k < n; ++k) ids.emplace(m.texts[k], static_cast<TokenId>(k));
  auto lookup = [&](std::string_view s, size_t index) {
    auto it = ids.find(s);
    if (it == ids.end()) fail(where, "merge {} uses {}, which is not in the vocabulary", index, printable(s));
    return it->second;
  };
  const json& merges = model.contains("merges") ? model["merges"] : json::array();
  if (!merges.is_array()) fail(where, "model.merges must be a list");
  m.merges.reserve(merges.size());
  for (size_t k = 0; k < merges.size(); ++k) {
    const json& e = merges[k];
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        fail(where, "merge {} {} is not two tokens separated by one space", k, printable(s));
      m.merges.emplace_back(lookup(std::string_view(s).substr(0, space), k), lookup(std::string_view(s).substr(space + 1), k));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      m.merges.emplace_back(lookup(e[0].get_ref<const std::string&>(), k), lookup(e[1].get_ref<const std::string&>(), k));
    } else {
      fail(where, "merge {} is neither \"a b\" nor [\"a\", \"b\"]", k);
    }
  }

  // Special ids: the unknown token from the model; BOS/EOS from the post-processor when it adds
  // them, else from tokenizer_config.json (token names, add_bos_token / add_eos_token).
  const TokenizerConfig config = folder.empty() ? TokenizerConfig{} : read_tokenizer_config(folder);
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    m.special.unk = find_token(m.texts, model["unk_token"].get<std::string>());
    if (!m.special.unk) fail(where, "unk_token {} is not in the vocabulary", printable(model["unk_token"].get<std::string>()));
    if (m.kinds[*m.special.unk] == TokenKind::Control || m.kinds[*m.special.unk] == TokenKind::Normal)
      m.kinds[*m.special.unk] = TokenKind::Unknown;
  }
  m.special.bos = find_token(m.texts, config.bos_token ? config.bos_token : std::optional<std::string>("<s>"));
  m.special.eos = find_token(m.texts, config.eos_token ? config.eos_token : std::optional<std::string>("</s>"));
  m.special.pad = find_token(m.texts, config.pad_token);
  const bool llama_class = config.tokenizer_class.rfind("Llama", 0) == 0 || config.tokenizer_class.rfind("CodeLlama", 0) == 0;
  m.special.add_bos = config.add_bos_token.value_or(llama_class || config.tokenizer_class.empty());
  m.special.add_eos = config.add_eos_token.value_or(false);
  const json* post = j.contains("post_processor") ? &j["post_processor"] : nullptr;
  if (post && post->is_object() && post->value("type", "") == "TemplateProcessing" && post->contains("single") &&
      (*post)["single"].is_array()) {
    m.special.add_bos = m.special.add_eos = false;
    bool after_text = false;
    for (const json& piece : (*post)["single"]) {
      if (piece.contains("Sequence")) {
        after_text = true;
        continue;
      }
      if (!piece.contains("SpecialToken") || !piece["SpecialToken"].is_object()) continue;
      const std::string name = piece["SpecialToken"].value("id", "");
      auto id = find_token(m.texts, name);
      const json& table = post->contains("special_tokens") ? (*post)["special_tokens"] : json();
      if (table.is_object() && table.contains(name) && table[name].contains("ids") && table[name]["ids"].is_array() &&
          table[name]["ids"].size() == 1 && table[name]["ids"][0].is_number_integer())
        id = checked_id(table[name]["ids"][0].get<int64_t>(), n);
      if (!id) fail(where, "post-processor token {} is not in the vocabulary", printable(name));
      if (!after_text) {
        m.special.bos = id;
        m.special.add_bos = true;
      } else {
        m.special.eos = id;
        m.special.add_eos = true;
      }
    }
  } else if (post && !post->is_null()) {
    fail(where, "post_processor {} is not supported", printable(post->value("type", std::string("?"))));
  }
  return std::make_unique<SpmTokenizer>(std::move(m));
}

TokenKind kind_from_type(int64_t type, const std::string& where, size_t id) {
  switch (type) {
    case 0:  // GGUF "undefined": llama.cpp treats it as a normal token
    case SentencePieceModel::kNormal: return TokenKind::Normal;
    case SentencePieceModel::kUnknown: return TokenKind::Unknown;
    case SentencePieceModel::kControl: return TokenKind::Control;
    case SentencePieceModel::kUserDefined: return TokenKind::UserDefined;
    case SentencePieceModel::kUnused: return TokenKind::Unused;
    case SentencePieceModel::kByte: return TokenKind::Byte;
    default: fail(where, "token {} has unknown type {}", id, type);
  }
}

}  // namespace

std::unique_ptr<Tokenizer> load_spm_from_hf_json(const json& tokenizer_json, const std::string& folder) {
  const std::string where = folder.empty() ? std::string("tokenizer.json") : folder + "/tokenizer.json";
  try {
    return load_from_json(tokenizer_json, folder, where);
  } catch (const json::exception& e) {  // a value of the wrong JSON type somewhere
    fail(where, "unexpected content: {}", e.what());
  }
}

std::unique_ptr<Tokenizer> load_spm_from_model_file(const std::string& path, const std::string& folder) {
  const SentencePieceModel sp = read_sentencepiece_model(path);
  if (sp.pieces.empty()) fail(path, "SentencePiece model has no pieces");
  if (sp.model_type != SentencePieceModel::kBpe) {
    static const char* names[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
    fail(path, "SentencePiece model type {} ({}) is not supported: only BPE models are", sp.model_type,
         sp.model_type >= 1 && sp.model_type <= 4 ? names[sp.model_type] : "unknown");
  }
  if (sp.has_precompiled_charsmap)
    fail(path, "SentencePiece normalizer {} has a normalization table; only the identity normalizer is supported",
         printable(sp.normalizer_name));
  if (sp.treat_whitespace_as_suffix) fail(path, "treat_whitespace_as_suffix is not supported");

  SpmModel m;
  m.source = path;
  const size_t n = sp.pieces.size();
  m.texts.reserve(n);
  m.scores.reserve(n);
  m.kinds.reserve(n);
  for (size_t k = 0; k < n; ++k) {
    const auto& p = sp.pieces[k];
    if (!is_valid_utf8(p.piece)) fail(path, "piece {} is not valid UTF-8: {}", k, printable(p.piece));
    m.texts.push_back(p.piece);
    m.scores.push_back(p.score);
    m.kinds.push_back(kind_from_type(p.type, path, k));
  }
  auto special_id = [&](int32_t id, const char* what) -> std::optional<TokenId> {
    if (id < 0) return std::nullopt;
    if (static_cast<size_t>(id) >= n) fail(path, "{} id {} is outside the {} pieces", what, id, n);
    return static_cast<TokenId>(id);
  };
  m.special.unk = special_id(sp.unk_id, "unk");
  if (!m.special.unk) fail(path, "SentencePiece model has no unknown piece (unk_id {})", sp.unk_id);
  m.special.bos = special_id(sp.bos_id, "bos");
  m.special.eos = special_id(sp.eos_id, "eos");
  m.special.pad = special_id(sp.pad_id, "pad");

  m.options.prefix = sp.add_dummy_prefix ? SpmPrefix::Always : SpmPrefix::Never;
  m.options.prefix_even_if_space = true;
  m.options.escape_whitespace = sp.escape_whitespaces;
  m.options.remove_extra_whitespace = sp.remove_extra_whitespaces;
  m.options.byte_fallback = sp.byte_fallback;
  m.options.fuse_unk = true;
  m.options.prefix_after_user_defined = false;  // sentencepiece matches them inside one text
  m.options.strip_decoded_space = sp.add_dummy_prefix;
  m.options.merge_any_token = false;

  const TokenizerConfig config = folder.empty() ? TokenizerConfig{} : read_tokenizer_config(folder);
  m.special.add_bos = config.add_bos_token.value_or(true);
  m.special.add_eos = config.add_eos_token.value_or(false);
  append_config_tokens(folder, m);
  if (config.pad_token && !m.special.pad) m.special.pad = find_token(m.texts, config.pad_token);
  return std::make_unique<SpmTokenizer>(std::move(m));
}

std::unique_ptr<Tokenizer> load_spm_from_gguf(const GgufFile& gguf) {
  const std::string& where = gguf.path();
  const std::string model = gguf.get_string("tokenizer.ggml.model");
  if (model != "llama") fail(where, "tokenizer.ggml.model is {}, not \"llama\"", printable(model));

  SpmModel m;
  m.source = where;
  m.texts = gguf.get_string_array("tokenizer.ggml.tokens");
  const size_t n = m.texts.size();
  if (n == 0) fail(where, "tokenizer.ggml.tokens is empty");
  if (gguf.find("tokenizer.ggml.scores")) {
    const auto scores = gguf.get_float_array("tokenizer.ggml.scores");
    if (scores.size() != n) fail(where, "tokenizer.ggml.scores has {} entries for {} tokens", scores.size(), n);
    m.scores.assign(scores.begin(), scores.end());
  }
  m.kinds.assign(n, TokenKind::Normal);
  if (gguf.find("tokenizer.ggml.token_type")) {
    const auto types = gguf.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != n) fail(where, "tokenizer.ggml.token_type has {} entries for {} tokens", types.size(), n);
    for (size_t k = 0; k < n; ++k) m.kinds[k] = kind_from_type(types[k], where, k);
  }

  // llama.cpp's SPM defaults: BOS 1, EOS 2, UNK 0; keys override them.
  auto id_key = [&](const char* key, std::optional<int64_t> fallback) -> std::optional<TokenId> {
    const auto v = gguf.uint_or(key);
    if (v) {
      if (*v >= n) fail(where, "{} = {} is outside the {} tokens", key, *v, n);
      return static_cast<TokenId>(*v);
    }
    return fallback ? checked_id(*fallback, n) : std::nullopt;
  };
  m.special.bos = id_key("tokenizer.ggml.bos_token_id", 1);
  m.special.eos = id_key("tokenizer.ggml.eos_token_id", 2);
  m.special.unk = id_key("tokenizer.ggml.unknown_token_id", 0);
  m.special.pad = id_key("tokenizer.ggml.padding_token_id", std::nullopt);
  m.special.eot = id_key("tokenizer.ggml.eot_token_id", std::nullopt);
  if (auto eom = id_key("tokenizer.ggml.eom_token_id", std::nullopt)) m.special.extra_eos.push_back(*eom);
  m.special.add_bos = gguf.bool_or("tokenizer.ggml.add_bos_token").value_or(true);
  m.special.add_eos = gguf.bool_or("tokenizer.ggml.add_eos_token").value_or(false);

  const bool space_prefix = gguf.bool_or("tokenizer.ggml.add_space_prefix").value_or(true);
  m.options.prefix = space_prefix ? SpmPrefix::Always : SpmPrefix::Never;
  m.options.prefix_even_if_space = true;
  m.options.escape_whitespace = true;
  m.options.remove_extra_whitespace = false;
  m.options.byte_fallback = true;
  m.options.fuse_unk = false;
  m.options.strip_decoded_space = space_prefix;
  m.options.merge_any_token = true;
  return std::make_unique<SpmTokenizer>(std::move(m));
}

}  // namespace billion
