// Byte-level BPE from a Hugging Face tokenizer.json (+ tokenizer_config.json,
// special_tokens_map.json, generation_config.json of the same folder), built the way the
// `tokenizers` library and transformers' fast tokenizer classes would run it.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/utf8.h"
#include "tokenizer/bpe.h"

namespace billion {

namespace fs = std::filesystem;

namespace {

// Far above any real vocabulary (the largest are ~260k) but low enough that a hostile file
// cannot make us allocate gigabytes.
constexpr int64_t kMaxVocab = 1 << 21;

bool contains_byte_level(const nlohmann::json& j) {
  if (j.is_object()) {
    if (j.value("type", std::string()) == "ByteLevel") return true;
    for (const auto& [key, value] : j.items())
      if (contains_byte_level(value)) return true;
  } else if (j.is_array()) {
    for (const auto& value : j)
      if (contains_byte_level(value)) return true;
  }
  return false;
}

// A vocabulary string's bytes: GPT-2 alphabet decoded, or the string's own UTF-8 when some
// character is outside the alphabet (HF's ByteLevel decoder does the same per token).
std::string token_to_bytes(const std::string& text) {
  std::string bytes;
  if (byte_level_decode(text, bytes)) return bytes;
  return text;
}

// Reads post_processor into prefix/suffix ids; true when it defines any special-token layout.
bool read_post_processor(const nlohmann::json& pp, BpeSpec& spec, const std::string& file) {
  if (!pp.is_object()) return false;
  const std::string type = pp.value("type", std::string());
  if (type == "Sequence") {
    bool any = false;
    for (const auto& p : pp.value("processors", nlohmann::json::array())) any |= read_post_processor(p, spec, file);
    return any;
  }
  if (type == "TemplateProcessing") {
    spec.prefix.clear();
    spec.suffix.clear();
    const auto& specials = pp.value("special_tokens", nlohmann::json::object());
    bool after_sequence = false;
    for (const auto& item : pp.value("single", nlohmann::json::array())) {
      if (item.contains("Sequence")) {
        after_sequence = true;
        continue;
      }
      if (!item.contains("SpecialToken")) fail(file, "post_processor: unknown template item {}", item.dump());
      const std::string name = item["SpecialToken"].value("id", std::string());
      auto it = specials.find(name);
      if (it == specials.end() || !it->contains("ids"))
        fail(file, "post_processor: template token \"{}\" is not in special_tokens", name);
      for (const auto& id : (*it)["ids"]) (after_sequence ? spec.suffix : spec.prefix).push_back(id.get<TokenId>());
    }
    return true;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    spec.prefix = {pp.at("cls").at(1).get<TokenId>()};
    spec.suffix = {pp.at("sep").at(1).get<TokenId>()};
    return true;
  }
  return false;  // ByteLevel (offsets only) and others add nothing
}

}  // namespace

bool is_byte_level_bpe_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) return false;
  if (j["model"].value("type", std::string("BPE")) != "BPE") return false;
  return contains_byte_level(j.value("pre_tokenizer", nlohmann::json())) ||
         contains_byte_level(j.value("decoder", nlohmann::json()));
}

std::unique_ptr<Tokenizer> load_bpe_from_hf_json(const nlohmann::json& j, const std::string& folder,
                                                 const std::string& json_path) {
  BpeSpec spec;
  spec.source = json_path;
  try {
    if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail(json_path, "no \"model\" object");
    const auto& model = j["model"];
    if (model.value("type", std::string("BPE")) != "BPE")
      fail(json_path, "model type \"{}\" is not BPE", model.value("type", std::string()));
    if (!model.contains("vocab") || !model["vocab"].is_object()) fail(json_path, "model.vocab is missing or not an object");
    if (!model.contains("merges") || !model["merges"].is_array()) fail(json_path, "model.merges is missing or not an array");

    // Vocabulary (ids may have holes; added tokens may lie beyond it).
    size_t size = 0;
    for (const auto& [text, id] : model["vocab"].items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxVocab)
        fail(json_path, "model.vocab[{}] has a bad id {}", printable(text), id.dump());
      size = std::max(size, static_cast<size_t>(id.get<int64_t>()) + 1);
    }
    const auto& added = j.value("added_tokens", nlohmann::json::array());
    for (const auto& a : added) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
          a["id"].get<int64_t>() > kMaxVocab || !a.contains("content") || !a["content"].is_string())
        fail(json_path, "added_tokens entry {} needs an integer \"id\" and a string \"content\"", a.dump().substr(0, 200));
      size = std::max(size, static_cast<size_t>(a["id"].get<int64_t>()) + 1);
    }
    spec.texts.assign(size, std::string());
    spec.bytes.assign(size, std::string());
    spec.kinds.assign(size, TokenKind::Unused);
    std::unordered_map<std::string, TokenId> vocab;
    vocab.reserve(size * 2);
    for (const auto& [text, id_json] : model["vocab"].items()) {
      const auto id = id_json.get<TokenId>();
      spec.texts[id] = text;
      spec.bytes[id] = token_to_bytes(text);
      spec.kinds[id] = TokenKind::Normal;
      vocab.emplace(text, id);
    }

    // Merges: "a b" strings (older files) or ["a", "b"] pairs (tokenizers >= 0.20).
    const auto& merges = model["merges"];
    spec.merges.reserve(merges.size());
    std::string left, right;
    for (size_t r = 0; r < merges.size(); ++r) {
      const auto& m = merges[r];
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t space = s.find(' ', 1);
        if (space == std::string::npos) fail(json_path, "merge #{} {} is not \"left right\"", r, printable(s));
        left = s.substr(0, space);
        right = s.substr(space + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      } else {
        fail(json_path, "merge #{} is neither a string nor a pair of strings: {}", r, m.dump().substr(0, 100));
      }
      auto a = vocab.find(left), b = vocab.find(right), c = vocab.find(left + right);
      if (a == vocab.end() || b == vocab.end() || c == vocab.end())
        fail(json_path, "merge #{} ({} {}) uses a token that is not in model.vocab", r, printable(left), printable(right));
      spec.merges.push_back({a->second, b->second, c->second});
    }
    spec.ignore_merges = model.value("ignore_merges", false);

    for (const auto& a : added) {
      AddedToken t;
      t.id = a["id"].get<TokenId>();
      t.content = a["content"].get<std::string>();
      t.special = a.value("special", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.single_word = a.value("single_word", false);
      if (spec.texts[t.id].empty()) spec.texts[t.id] = t.content;
      spec.bytes[t.id] = token_to_bytes(t.content);
      spec.kinds[t.id] = t.special ? TokenKind::Control : TokenKind::UserDefined;
      spec.added.push_back(std::move(t));
    }

    spec.normalizer = normalizer_from_json(j.value("normalizer", nlohmann::json()), json_path);
    spec.pre_tokenizer = pretokenizer_from_json(j.value("pre_tokenizer", nlohmann::json()), json_path);
    const bool has_template = read_post_processor(j.value("post_processor", nlohmann::json()), spec, json_path);
    for (TokenId id : spec.prefix)
      if (id < 0 || static_cast<size_t>(id) >= size) fail(json_path, "post_processor token id {} is outside the vocabulary", id);
    for (TokenId id : spec.suffix)
      if (id < 0 || static_cast<size_t>(id) >= size) fail(json_path, "post_processor token id {} is outside the vocabulary", id);
    apply_hf_config(spec, folder, has_template);
  } catch (const nlohmann::json::exception& e) {
    fail(json_path, "unexpected tokenizer.json structure: {}", e.what());
  }
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

// ---------------------------------------------------------------------------------------------

namespace {

// A token in tokenizer_config.json / special_tokens_map.json: "text" or {"content": "text"}.
std::optional<std::string> token_string(const nlohmann::json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  return std::nullopt;
}

std::optional<TokenId> find_text(const BpeSpec& spec, const std::string& text) {
  for (const auto& a : spec.added)
    if (a.content == text) return a.id;
  for (size_t id = 0; id < spec.texts.size(); ++id)
    if (spec.texts[id] == text) return static_cast<TokenId>(id);
  return std::nullopt;
}

}  // namespace

void apply_hf_config(BpeSpec& spec, const std::string& folder, bool has_template) {
  nlohmann::json config = nlohmann::json::object(), map = nlohmann::json::object(), generation;
  if (!folder.empty()) {
    const std::string config_path = folder + "/tokenizer_config.json";
    const std::string map_path = folder + "/special_tokens_map.json";
    const std::string generation_path = folder + "/generation_config.json";
    if (fs::exists(config_path)) config = read_json_file(config_path);
    if (fs::exists(map_path)) map = read_json_file(map_path);
    if (fs::exists(generation_path)) generation = read_json_file(generation_path);
    if (!config.is_object()) fail(config_path, "expected a JSON object");
    if (!map.is_object()) fail(map_path, "expected a JSON object");
  }
  auto lookup = [&](const char* key) -> std::optional<TokenId> {
    auto text = token_string(config, key);
    if (!text) text = token_string(map, key);
    if (!text) return std::nullopt;
    return find_text(spec, *text);
  };
  auto& sp = spec.special;
  if (auto id = lookup("bos_token")) sp.bos = id;
  if (auto id = lookup("eos_token")) sp.eos = id;
  if (auto id = lookup("unk_token")) sp.unk = id;
  if (auto id = lookup("pad_token")) sp.pad = id;
  // End of turn: the chat formats' closing token, when the vocabulary has one.
  for (const char* name : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"}) {
    if (auto id = find_text(spec, name)) {
      sp.eot = id;
      break;
    }
  }
  // generation_config.json may list several ids that end generation (Llama-3: 128001/8/9).
  if (generation.is_object() && generation.contains("eos_token_id")) {
    auto add = [&](const nlohmann::json& v) {
      if (!v.is_number_integer()) return;
      const auto id = v.get<TokenId>();
      if (id < 0 || static_cast<size_t>(id) >= spec.texts.size()) return;
      if (!sp.eos) sp.eos = id;
      if (id != *sp.eos && std::find(sp.extra_eos.begin(), sp.extra_eos.end(), id) == sp.extra_eos.end())
        sp.extra_eos.push_back(id);
    };
    const auto& e = generation["eos_token_id"];
    if (e.is_array()) {
      for (const auto& v : e) add(v);
    } else {
      add(e);
    }
  }

  if (sp.eot && sp.eot != sp.eos &&
      std::find(sp.extra_eos.begin(), sp.extra_eos.end(), *sp.eot) == sp.extra_eos.end())
    sp.extra_eos.push_back(*sp.eot);

  // transformers' Llama/GPT-NeoX-style fast tokenizers rebuild the template from
  // add_bos_token / add_eos_token whatever tokenizer.json says.
  std::string cls = config.value("tokenizer_class", std::string());
  if (cls.size() > 4 && cls.compare(cls.size() - 4, 4, "Fast") == 0) cls.resize(cls.size() - 4);
  const bool llama_like = cls == "LlamaTokenizer" || cls == "CodeLlamaTokenizer" || cls == "GemmaTokenizer" ||
                          cls == "CohereTokenizer";
  if (llama_like || cls == "GPTNeoXTokenizer") {
    const bool add_bos = config.value("add_bos_token", llama_like);
    const bool add_eos = config.value("add_eos_token", false);
    spec.prefix.clear();
    spec.suffix.clear();
    if (add_bos && sp.bos) spec.prefix.push_back(*sp.bos);
    if (add_eos && sp.eos) spec.suffix.push_back(*sp.eos);
  } else if (!has_template) {
    // No post-processor: a slow-tokenizer-style flag is all there is.
    if (config.value("add_bos_token", false) && sp.bos) spec.prefix = {*sp.bos};
    if (config.value("add_eos_token", false) && sp.eos) spec.suffix = {*sp.eos};
  }
  sp.add_bos = sp.bos && std::find(spec.prefix.begin(), spec.prefix.end(), *sp.bos) != spec.prefix.end();
  sp.add_eos = sp.eos && std::find(spec.suffix.begin(), spec.suffix.end(), *sp.eos) != spec.suffix.end();
}

}  // namespace billion
