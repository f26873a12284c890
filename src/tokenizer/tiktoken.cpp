// tiktoken rank files → BpeTokenizer (see tiktoken.h).
//
// tiktoken merges, at every step, the adjacent pair whose concatenation has the lowest rank. We
// express that as ordinary merge rules: for every token T and every split T = L + R where L and R
// are tokens, a rule (L, R) → T with T's rank. Pieces are always tokens, so the engine then picks
// exactly the pair tiktoken would (lowest rank, leftmost on ties) while keeping its fast pair
// lookup. Whole pieces found in the ranks are emitted directly, as tiktoken does first.
#include "tokenizer/tiktoken.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_map>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/utf8.h"
#include "tokenizer/bpe.h"

namespace billion {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxRank = 1 << 21;  // far above real encodings (o200k: 200k)

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  uint32_t acc = 0;
  int bits = 0;
  size_t k = 0;
  for (; k < in.size() && in[k] != '='; ++k) {
    const int v = base64_value(in[k]);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  for (; k < in.size(); ++k)
    if (in[k] != '=') return false;
  return !out.empty();
}

enum class Encoding { Llama3, Arcade100k, Cl100k, O200k };

std::vector<std::pair<std::string, TokenId>> default_specials(Encoding e) {
  std::vector<std::pair<std::string, TokenId>> out;
  switch (e) {
    case Encoding::Llama3: {
      // Meta's llama3/tokenizer.py names (HF's tokenizer_config.json, when present, wins).
      const char* named[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                             "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
                             "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
                             "<|python_tag|>", "<|image|>"};
      TokenId id = 128000;
      for (const char* n : named) out.emplace_back(n, id++);
      for (int k = 2; id < 128256; ++k) out.emplace_back(fmt::format("<|reserved_special_token_{}|>", k), id++);
      break;
    }
    case Encoding::Arcade100k: {
      // tokenization_arcade100k.py: appended after cl100k's ranks, from 100257, in this order.
      const char* names[] = {"<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                             "<gh_stars>", "<filename>", "<issue_start>", "<issue_comment>", "<issue_closed>",
                             "<jupyter_start>", "<jupyter_text>", "<jupyter_code>", "<jupyter_output>",
                             "<empty_output>", "<commit_before>", "<commit_msg>", "<commit_after>", "<reponame>",
                             "<|endofprompt|>", "<|im_start|>", "<|im_end|>", "<|pause|>", "<|reg0|>", "<|reg1|>",
                             "<|reg2|>", "<|reg3|>", "<|reg4|>", "<|reg5|>", "<|reg6|>", "<|reg7|>", "<|extra0|>"};
      TokenId id = 100257;
      for (const char* n : names) out.emplace_back(n, id++);
      break;
    }
    case Encoding::Cl100k:
      out = {{"<|endoftext|>", 100257}, {"<|fim_prefix|>", 100258}, {"<|fim_middle|>", 100259},
             {"<|fim_suffix|>", 100260}, {"<|endofprompt|>", 100276}};
      break;
    case Encoding::O200k:
      out = {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}};
      break;
  }
  return out;
}

}  // namespace

bool is_tiktoken_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string line;
  if (!std::getline(in, line)) return false;
  const size_t space = line.find(' ');
  if (space == 0 || space == std::string::npos || space + 1 >= line.size()) return false;
  for (size_t k = 0; k < space; ++k)
    if (base64_value(line[k]) < 0 && line[k] != '=') return false;
  for (size_t k = space + 1; k < line.size(); ++k)
    if (!(line[k] >= '0' && line[k] <= '9') && !(line[k] == '\r' && k + 1 == line.size())) return false;
  return true;
}

std::unique_ptr<Tokenizer> load_tiktoken(const std::string& path, const std::string& folder) {
  const std::string name = fs::path(path).filename().string();
  Encoding encoding;
  if (name == "tokenizer.model") encoding = Encoding::Llama3;
  else if (name.find("arcade100k") != std::string::npos) encoding = Encoding::Arcade100k;
  else if (name.find("cl100k") != std::string::npos) encoding = Encoding::Cl100k;
  else if (name.find("o200k") != std::string::npos) encoding = Encoding::O200k;
  else fail(path, "unknown tiktoken encoding (expected Llama-3's tokenizer.model, arcade100k, cl100k_base or o200k_base)");

  // Ranks.
  const std::string text = read_text_file(path);
  std::vector<std::pair<std::string, int64_t>> ranks;
  ranks.reserve(text.size() / 16);
  int64_t max_rank = -1;
  size_t pos = 0, line_no = 0;
  std::string bytes;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    if (space == std::string_view::npos || !base64_decode(line.substr(0, space), bytes))
      fail(path, "line {}: expected \"<base64> <rank>\", got {}", line_no, printable(line));
    int64_t rank = 0;
    const auto digits = line.substr(space + 1);
    if (digits.empty() || digits.size() > 7) fail(path, "line {}: bad rank {}", line_no, printable(digits));
    for (char c : digits) {
      if (c < '0' || c > '9') fail(path, "line {}: bad rank {}", line_no, printable(digits));
      rank = rank * 10 + (c - '0');
    }
    if (rank > kMaxRank) fail(path, "line {}: rank {} is implausibly large", line_no, rank);
    max_rank = std::max(max_rank, rank);
    ranks.emplace_back(bytes, rank);
  }
  if (ranks.empty()) fail(path, "no ranks in file");

  BpeSpec spec;
  spec.source = path;
  size_t size = static_cast<size_t>(max_rank) + 1;

  // Special tokens: tokenizer_config.json's added_tokens_decoder, else the encoding's own.
  std::vector<AddedToken> specials;
  nlohmann::json config;
  const std::string config_path = folder.empty() ? std::string() : folder + "/tokenizer_config.json";
  if (!config_path.empty() && fs::exists(config_path)) config = read_json_file(config_path);
  if (config.is_object() && config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
    for (const auto& [key, value] : config["added_tokens_decoder"].items()) {
      AddedToken t;
      long id = -1;
      try {
        id = std::stol(key);
      } catch (const std::exception&) {
        fail(config_path, "added_tokens_decoder key \"{}\" is not an id", key);
      }
      t.id = static_cast<TokenId>(std::clamp<long>(id, -1, kMaxRank + 1));
      if (t.id < 0 || t.id > kMaxRank || !value.is_object() || !value.contains("content") || !value["content"].is_string())
        fail(config_path, "added_tokens_decoder[\"{}\"] needs a string \"content\" and a sane id", key);
      t.content = value["content"].get<std::string>();
      t.special = value.value("special", true);
      t.lstrip = value.value("lstrip", false);
      t.rstrip = value.value("rstrip", false);
      t.single_word = value.value("single_word", false);
      specials.push_back(std::move(t));
    }
  } else {
    for (auto& [content, id] : default_specials(encoding)) {
      AddedToken t;
      t.id = id;
      t.content = content;
      t.special = true;
      specials.push_back(std::move(t));
    }
  }
  for (const auto& t : specials) size = std::max(size, static_cast<size_t>(t.id) + 1);

  spec.texts.assign(size, std::string());
  spec.bytes.assign(size, std::string());
  spec.kinds.assign(size, TokenKind::Unused);
  for (auto& [b, rank] : ranks) {
    if (spec.kinds[rank] != TokenKind::Unused) fail(path, "rank {} appears twice", rank);
    spec.texts[rank] = byte_level_encode(b);  // as HF's converted vocabulary writes it
    spec.bytes[rank] = std::move(b);
    spec.kinds[rank] = TokenKind::Normal;
  }
  ranks.clear();
  for (const auto& t : specials) {
    if (spec.kinds[t.id] == TokenKind::Normal) fail(path, "special token {} reuses rank {}", printable(t.content), t.id);
    spec.texts[t.id] = t.content;
    spec.bytes[t.id] = t.content;
    spec.kinds[t.id] = t.special ? TokenKind::Control : TokenKind::UserDefined;
  }
  spec.added = std::move(specials);

  // Merge rules from every two-token split of every token (see the file comment).
  std::unordered_map<std::string_view, TokenId> by_bytes;
  by_bytes.reserve(size * 2);
  for (size_t id = 0; id < size; ++id)
    if (spec.kinds[id] == TokenKind::Normal) by_bytes.emplace(spec.bytes[id], static_cast<TokenId>(id));
  for (size_t id = 0; id < size; ++id) {
    if (spec.kinds[id] != TokenKind::Normal) continue;
    const std::string_view b = spec.bytes[id];
    for (size_t k = 1; k < b.size(); ++k) {
      auto l = by_bytes.find(b.substr(0, k));
      if (l == by_bytes.end()) continue;
      auto r = by_bytes.find(b.substr(k));
      if (r == by_bytes.end()) continue;
      spec.merges.push_back({l->second, r->second, static_cast<TokenId>(id)});
      spec.rank_of.push_back(static_cast<int32_t>(id));
    }
  }
  spec.ignore_merges = true;

  switch (encoding) {
    case Encoding::Llama3:
    case Encoding::Cl100k:
      spec.pre_tokenizer = make_split(kLlama3Pattern, SplitBehavior::Isolated, false, path);
      break;
    case Encoding::Arcade100k:
      spec.normalizer = make_unicode_normalizer(UnicodeForm::NFC);
      spec.pre_tokenizer = make_split(kArcade100kPattern, SplitBehavior::Isolated, false, path);
      break;
    case Encoding::O200k:
      spec.pre_tokenizer = make_split(kO200kPattern, SplitBehavior::Isolated, false, path);
      break;
  }

  apply_hf_config(spec, folder, /*has_template=*/false);
  auto& sp = spec.special;
  auto find = [&](const char* content) -> std::optional<TokenId> {
    for (const auto& t : spec.added)
      if (t.content == content) return t.id;
    return std::nullopt;
  };
  if (encoding == Encoding::Llama3) {
    if (!sp.bos) sp.bos = find("<|begin_of_text|>");
    if (!sp.eos) sp.eos = find("<|end_of_text|>");
    for (const char* n : {"<|eom_id|>", "<|eot_id|>"}) {
      auto id = find(n);
      if (id && id != sp.eos && std::find(sp.extra_eos.begin(), sp.extra_eos.end(), *id) == sp.extra_eos.end())
        sp.extra_eos.push_back(*id);
    }
    // HF's Llama-3 tokenizer.json prepends <|begin_of_text|> (TemplateProcessing).
    const bool add_bos = config.is_object() ? config.value("add_bos_token", true) : true;
    if (add_bos && sp.bos && spec.prefix.empty()) spec.prefix = {*sp.bos};
  } else {
    if (!sp.eos) sp.eos = find("<|endoftext|>");
    if (sp.eot && sp.eot != sp.eos && std::find(sp.extra_eos.begin(), sp.extra_eos.end(), *sp.eot) == sp.extra_eos.end())
      sp.extra_eos.push_back(*sp.eot);
  }
  sp.add_bos = sp.bos && !spec.prefix.empty() && spec.prefix.front() == *sp.bos;
  sp.add_eos = sp.eos && !spec.suffix.empty() && spec.suffix.back() == *sp.eos;
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

}  // namespace billion
