// Tokenizer entry points: which loader a folder / GGUF file / path needs, and the streaming
// decoder that turns token ids into text without ever emitting part of a UTF-8 character.
#include "tokenizer/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/utf8.h"
#include "formats/gguf.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tiktoken.h"

#if __has_include("tokenizer/spm.h")
#include "tokenizer/spm.h"
#define BILLION_HAVE_SPM 1
#endif

namespace billion {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// StreamingDecoder

namespace {
constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD
}

std::string StreamingDecoder::push(TokenId id) {
  // Until some text has come out, decode() the token alone: it knows the tokenizer's rule for
  // the start of the text (SentencePiece drops the dummy-prefix space there).
  std::string piece;
  if (first_) piece = tokenizer_.decode({id}, skip_special_);
  else if (!(skip_special_ && tokenizer_.token_kind(id) == TokenKind::Control)) piece = tokenizer_.token_bytes(id);
  if (!piece.empty()) first_ = false;
  pending_ += piece;
  return take(false);
}

std::string StreamingDecoder::finish() {
  std::string out = take(true);
  pending_.clear();
  first_ = true;
  return out;
}

// Emits every complete character of pending_; invalid bytes become U+FFFD (one per byte, so the
// output is always valid UTF-8); an incomplete character at the end waits unless `final`.
std::string StreamingDecoder::take(bool final) {
  std::string out;
  size_t i = 0;
  const size_t n = pending_.size();
  while (i < n) {
    const auto lead = static_cast<uint8_t>(pending_[i]);
    if (lead < 0x80) {
      out += static_cast<char>(lead);
      ++i;
      continue;
    }
    const int len = utf8_sequence_length(lead);
    if (len == 1) {  // a stray continuation byte or an impossible lead byte
      out += kReplacement;
      ++i;
      continue;
    }
    const size_t avail = std::min<size_t>(static_cast<size_t>(len), n - i);
    bool continuation_ok = true;
    for (size_t k = 1; k < avail; ++k)
      if ((static_cast<uint8_t>(pending_[i + k]) & 0xc0) != 0x80) continuation_ok = false;
    if (!continuation_ok) {
      out += kReplacement;
      ++i;
      continue;
    }
    if (avail < static_cast<size_t>(len)) {  // the rest of this character is in a later token
      if (final) {
        out += kReplacement;
        i = n;
      }
      break;
    }
    size_t p = i;
    const uint32_t cp = decode_utf8(pending_, p);
    if (cp == 0xfffd && !(p - i == 3 && lead == 0xef)) {  // overlong, surrogate or > U+10FFFF
      out += kReplacement;
      ++i;
      continue;
    }
    out.append(pending_, i, static_cast<size_t>(len));
    i += static_cast<size_t>(len);
  }
  pending_.erase(0, i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Loading

std::unique_ptr<Tokenizer> load_tokenizer_from_folder(const std::string& folder) {
  if (!fs::is_directory(folder)) fail(folder, "not a folder (expected a model folder with tokenizer files)");
  const std::string json_path = folder + "/tokenizer.json";
  if (fs::exists(json_path)) {
    const nlohmann::json j = read_json_file(json_path);
    if (is_byte_level_bpe_json(j)) return load_bpe_from_hf_json(j, folder, json_path);
#ifdef BILLION_HAVE_SPM
    return load_spm_from_hf_json(j, folder);
#else
    fail(json_path, "not a byte-level BPE tokenizer, and SentencePiece support is not built in");
#endif
  }
  const std::string model_path = folder + "/tokenizer.model";
  if (fs::exists(model_path)) {
    if (is_tiktoken_file(model_path)) return load_tiktoken(model_path, folder);
#ifdef BILLION_HAVE_SPM
    return load_spm_from_model_file(model_path, folder);
#else
    fail(model_path, "SentencePiece support is not built in");
#endif
  }
  std::vector<std::string> tiktoken_files;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.is_regular_file() && entry.path().extension() == ".tiktoken") tiktoken_files.push_back(entry.path().string());
  std::sort(tiktoken_files.begin(), tiktoken_files.end());
  if (!tiktoken_files.empty()) return load_tiktoken(tiktoken_files.front(), folder);
  fail(folder, "no tokenizer found (looked for tokenizer.json, tokenizer.model and *.tiktoken)");
}

std::unique_ptr<Tokenizer> load_tokenizer_from_gguf(const GgufFile& gguf) {
  const auto model = gguf.string_or("tokenizer.ggml.model");
  if (!model) fail(gguf.path(), "no tokenizer.ggml.model: the file carries no tokenizer");
  if (*model == "gpt2") return load_bpe_from_gguf(gguf);
#ifdef BILLION_HAVE_SPM
  if (*model == "llama") return load_spm_from_gguf(gguf);
#endif
  fail(gguf.path(), "tokenizer.ggml.model \"{}\" is not supported (supported: gpt2, llama)", *model);
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  if (fs::is_directory(path)) return load_tokenizer_from_folder(path);
  if (!fs::exists(path)) fail(path, "no such file or folder");
  char magic[4] = {};
  std::ifstream(path, std::ios::binary).read(magic, 4);
  if (std::string_view(magic, 4) == "GGUF") {
    GgufFile gguf(path);
    return load_tokenizer_from_gguf(gguf);
  }
  // A tokenizer file given directly: its folder supplies the configuration files.
  const fs::path p(path);
  const std::string folder = p.has_parent_path() ? p.parent_path().string() : ".";
  const std::string name = p.filename().string();
  if (name == "tokenizer.json") {
    const nlohmann::json j = read_json_file(path);
    if (is_byte_level_bpe_json(j)) return load_bpe_from_hf_json(j, folder, path);
#ifdef BILLION_HAVE_SPM
    return load_spm_from_hf_json(j, folder);
#endif
  }
  if (is_tiktoken_file(path)) return load_tiktoken(path, folder);
#ifdef BILLION_HAVE_SPM
  if (p.extension() == ".model") return load_spm_from_model_file(path, folder);
#endif
  fail(path, "not a GGUF file, model folder, tokenizer.json, tokenizer.model or tiktoken file");
}

}  // namespace billion
