// Normalizers (see normalize.h). ICU does the Unicode work on valid UTF-8 runs; invalid bytes in
// between are copied unchanged so that normalising never loses input bytes.
#include "tokenizer/normalize.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/locid.h>
#include <unicode/unistr.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "core/utf8.h"
#include "tokenizer/pretokenizer.h"

namespace billion {
namespace {

// Calls fn(run, valid) for the maximal runs of valid / invalid UTF-8 in `s`.
template <typename F>
void for_each_utf8_run(std::string_view s, F&& fn) {
  size_t run_start = 0, pos = 0;
  bool run_valid = true;
  while (pos < s.size()) {
    const size_t before = pos;
    const uint32_t cp = decode_utf8(s, pos);
    const bool valid = cp != 0xfffd || pos - before == 3;
    if (valid != run_valid && before > run_start) {
      fn(s.substr(run_start, before - run_start), run_valid);
      run_start = before;
    }
    run_valid = valid;
  }
  if (s.size() > run_start) fn(s.substr(run_start), run_valid);
}

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(UnicodeForm form) {
    UErrorCode status = U_ZERO_ERROR;
    switch (form) {
      case UnicodeForm::NFC: n_ = icu::Normalizer2::getNFCInstance(status); break;
      case UnicodeForm::NFD: n_ = icu::Normalizer2::getNFDInstance(status); break;
      case UnicodeForm::NFKC: n_ = icu::Normalizer2::getNFKCInstance(status); break;
      case UnicodeForm::NFKD: n_ = icu::Normalizer2::getNFKDInstance(status); break;
    }
    if (U_FAILURE(status) || !n_) throw Error(std::string("ICU: cannot load normalizer: ") + u_errorName(status));
  }

  void normalize(std::string_view in, std::string& out) const override {
    out.clear();
    if (is_ascii(in)) {  // every form leaves ASCII unchanged: the common case costs one scan
      out.assign(in);
      return;
    }
    for_each_utf8_run(in, [&](std::string_view run, bool valid) {
      UErrorCode status = U_ZERO_ERROR;
      if (valid && !n_->isNormalizedUTF8(icu::StringPiece(run.data(), static_cast<int32_t>(run.size())), status)) {
        status = U_ZERO_ERROR;
        icu::StringByteSink<std::string> sink(&out);
        n_->normalizeUTF8(0, icu::StringPiece(run.data(), static_cast<int32_t>(run.size())), sink, nullptr, status);
        if (U_SUCCESS(status)) return;
      }
      out.append(run);
    });
  }

 private:
  const icu::Normalizer2* n_ = nullptr;
};

// Full Unicode lower-casing (as Rust's str::to_lowercase, which HF uses).
class LowercaseNormalizer final : public Normalizer {
 public:
  void normalize(std::string_view in, std::string& out) const override {
    out.clear();
    for_each_utf8_run(in, [&](std::string_view run, bool valid) {
      if (!valid || is_ascii(run)) {
        for (char c : run) out += valid ? static_cast<char>(std::tolower(static_cast<unsigned char>(c))) : c;
        return;
      }
      auto u = icu::UnicodeString::fromUTF8(icu::StringPiece(run.data(), static_cast<int32_t>(run.size())));
      u.toLower(icu::Locale::getRoot());
      u.toUTF8String(out);
    });
  }
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::string_view pattern, std::string content, const std::string& where)
      : regex_(pattern, where), content_(std::move(content)) {}
  void normalize(std::string_view in, std::string& out) const override {
    out.clear();
    size_t pos = 0, copied = 0, begin = 0, end = 0;
    while (pos <= in.size() && regex_.find(in, pos, begin, end)) {
      out.append(in.substr(copied, begin - copied));
      out += content_;
      copied = end;
      pos = end > begin ? end : begin + 1;
    }
    out.append(in.substr(copied));
  }

 private:
  Regex regex_;
  std::string content_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string_view in, std::string& out) const override {
    out.clear();
    if (in.empty()) return;  // HF prepends only to non-empty text
    out = prefix_;
    out.append(in);
  }

 private:
  std::string prefix_;
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string_view in, std::string& out) const override {
    auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
    size_t b = 0, e = in.size();
    if (left_)
      while (b < e && is_space(in[b])) ++b;
    if (right_)
      while (e > b && is_space(in[e - 1])) --e;
    out.assign(in.substr(b, e - b));
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void normalize(std::string_view in, std::string& out) const override {
    out.assign(in);
    std::string tmp;
    for (const auto& step : steps_) {
      step->normalize(out, tmp);
      out.swap(tmp);
    }
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> make_unicode_normalizer(UnicodeForm form) { return std::make_unique<UnicodeNormalizer>(form); }

std::unique_ptr<Normalizer> normalizer_from_json(const nlohmann::json& j, const std::string& file) {
  if (j.is_null()) return nullptr;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail(file, "normalizer: expected an object with a \"type\", got {}", j.dump().substr(0, 200));
  const std::string type = j["type"].get<std::string>();
  if (type == "NFC") return make_unicode_normalizer(UnicodeForm::NFC);
  if (type == "NFD") return make_unicode_normalizer(UnicodeForm::NFD);
  if (type == "NFKC") return make_unicode_normalizer(UnicodeForm::NFKC);
  if (type == "NFKD") return make_unicode_normalizer(UnicodeForm::NFKD);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const auto& step : j.value("normalizers", nlohmann::json::array()))
      if (auto s = normalizer_from_json(step, file)) steps.push_back(std::move(s));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  if (type == "Replace") {
    const auto& pattern = j.value("pattern", nlohmann::json());
    const std::string content = j.value("content", std::string());
    if (pattern.contains("String") && pattern["String"].is_string())
      return std::make_unique<ReplaceNormalizer>(regex_escape(pattern["String"].get<std::string>()), content, file);
    if (pattern.contains("Regex") && pattern["Regex"].is_string())
      return std::make_unique<ReplaceNormalizer>(pattern["Regex"].get<std::string>(), content, file);
    fail(file, "normalizer Replace: bad pattern {}", pattern.dump());
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(j.value("prepend", std::string()));
  if (type == "Strip") return std::make_unique<StripNormalizer>(j.value("strip_left", true), j.value("strip_right", true));
  fail(file, "normalizer type \"{}\" is not supported for byte-level BPE", type);
}

}  // namespace billion
