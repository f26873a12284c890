// MMLU loading, prompts and log-likelihood scoring (see mmlu.h).
//
// Scoring follows lm-evaluation-harness' loglikelihood: the continuation " X" is scored as the
// tokens of encode(context + " X") after the first len(encode(context)) tokens. When every " X"
// is one token and encode(context + " X") == encode(context) + [id] (checked per question, since
// a BPE merge across the boundary would break it), the four scores are the log-softmax of one
// forward pass's last logits at the four ids ("single forward"); otherwise each continuation is
// evaluated on its own ("per continuation").
#include "eval/mmlu.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <span>

#include "core/error.h"
#include "formats/csv.h"

namespace billion::eval {
namespace {

// Python's str.strip() for the ASCII whitespace MMLU questions carry.
std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\v\f";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e + 1 - b);
}

std::vector<MmluQuestion> read_split(const std::string& path) {
  if (!std::filesystem::exists(path)) fail(path, "MMLU file not found (is --data / BILLION_DATA the folder holding mmlu/dev and mmlu/test?)");
  auto rows = read_csv_file(path);
  std::vector<MmluQuestion> out;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (r.size() != 6) fail(path, "record {} has {} fields; MMLU rows are question,A,B,C,D,answer", i + 1, r.size());
    std::string letter = strip(r[5]);
    if (letter.size() != 1 || letter[0] < 'A' || letter[0] > 'D')
      fail(path, "record {}: the answer is \"{}\", not one of A, B, C, D", i + 1, r[5]);
    out.push_back({r[0], {r[1], r[2], r[3], r[4]}, letter[0] - 'A'});
  }
  if (out.empty()) fail(path, "no questions in the file");
  return out;
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = std::min(a.size(), b.size()), i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// log P(id) from one row of logits [vocab].
float log_prob(std::span<const float> logits, int32_t id) {
  float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - max));
  return static_cast<float>(logits[id] - max - std::log(sum));
}

}  // namespace

const std::vector<std::string>& mmlu_default_subjects() {
  static const std::vector<std::string> subjects = {
      "abstract_algebra",   "anatomy",   "college_computer_science", "high_school_biology",  "high_school_mathematics",
      "high_school_us_history", "marketing", "philosophy",              "professional_medicine", "world_religions"};
  return subjects;
}

std::vector<std::string> mmlu_all_subjects(const std::string& mmlu_dir) {
  std::string test_dir = mmlu_dir + "/test";
  if (!std::filesystem::is_directory(test_dir)) fail(test_dir, "not a folder; the MMLU data needs dev/ and test/ (hendrycks/test data.tar)");
  std::vector<std::string> names;
  const std::string suffix = "_test.csv";
  for (const auto& e : std::filesystem::directory_iterator(test_dir)) {
    std::string f = e.path().filename();
    if (f.size() > suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0)
      names.push_back(f.substr(0, f.size() - suffix.size()));
  }
  if (names.empty()) fail(test_dir, "no *_test.csv files: the MMLU data folder is empty");
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> mmlu_subjects_from(const std::string& spec, const std::string& mmlu_dir) {
  if (spec.empty() || spec == "default") return mmlu_default_subjects();
  auto available = mmlu_all_subjects(mmlu_dir);
  if (spec == "all") return available;
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    std::string name = strip(spec.substr(start, end - start));
    if (!name.empty()) {
      if (!std::binary_search(available.begin(), available.end(), name))
        fail(mmlu_dir, "no MMLU subject \"{}\" (test/{}_test.csv); use 'all', 'default' or names such as abstract_algebra", name, name);
      out.push_back(name);
    }
    start = end + 1;
  }
  if (out.empty()) fail("--mmlu-subjects", "no subject named");
  return out;
}

MmluSubject load_mmlu_subject(const std::string& mmlu_dir, const std::string& subject) {
  MmluSubject s;
  s.name = subject;
  s.dev = read_split(mmlu_dir + "/dev/" + subject + "_dev.csv");
  s.test = read_split(mmlu_dir + "/test/" + subject + "_test.csv");
  return s;
}

std::string mmlu_question_text(const MmluQuestion& q) {
  std::string t = strip(q.question);
  for (int i = 0; i < 4; ++i) t += std::string("\n") + char('A' + i) + ". " + q.choices[i];
  return t + "\nAnswer:";
}

std::string mmlu_header(const MmluSubject& subject, int shots) {
  std::string name = subject.name;
  std::replace(name.begin(), name.end(), '_', ' ');
  std::string h = "The following are multiple choice questions (with answers) about " + name + ".\n\n";
  int n = std::min<int>(shots, subject.dev.size());
  for (int i = 0; i < n; ++i) {
    const auto& q = subject.dev[i];
    h += mmlu_question_text(q) + " " + char('A' + q.answer) + "\n\n";
  }
  return h;
}

MmluResult run_mmlu(Model& model, const std::string& mmlu_dir, const MmluOptions& options, ThreadPool& pool,
                    const MmluProgressFn& progress) {
  using Clock = std::chrono::steady_clock;
  const Tokenizer& tok = model.tokenizer();
  const EncodeOptions enc{.add_special = true, .parse_special = false};  // BOS as the tokenizer's default
  MmluResult result;
  result.shots = options.shots;
  result.reuse_prefix = options.reuse_prefix;

  std::vector<MmluSubject> subjects;
  int total = 0;
  for (const auto& name : options.subjects.empty() ? mmlu_default_subjects() : options.subjects) {
    subjects.push_back(load_mmlu_subject(mmlu_dir, name));
    auto& t = subjects.back().test;
    if (options.limit > 0 && static_cast<int>(t.size()) > options.limit) t.resize(options.limit);
    total += static_cast<int>(t.size());
  }

  // The letters' ids, when each " X" is a single token.
  std::array<int32_t, 4> letter_id{};
  bool letters_single = true;
  for (int i = 0; i < 4; ++i) {
    auto ids = tok.encode(std::string(" ") + char('A' + i), {.add_special = false});
    letters_single = letters_single && ids.size() == 1;
    letter_id[i] = ids.empty() ? -1 : ids[0];
  }

  // Tokenize everything first: the cache is sized for the longest prompt.
  std::vector<std::vector<std::string>> contexts(subjects.size());
  std::vector<std::vector<std::vector<int32_t>>> prompts(subjects.size());
  std::vector<std::vector<int32_t>> headers(subjects.size());
  size_t longest = 0;
  for (size_t s = 0; s < subjects.size(); ++s) {
    std::string header = mmlu_header(subjects[s], options.shots);
    headers[s] = tok.encode(header, enc);
    for (const auto& q : subjects[s].test) {
      contexts[s].push_back(header + mmlu_question_text(q));
      prompts[s].push_back(tok.encode(contexts[s].back(), enc));
      longest = std::max(longest, prompts[s].back().size());
    }
  }
  int capacity = std::min<int>(model.spec().context_length, static_cast<int>(longest) + 8);
  if (static_cast<int>(longest) + 2 > model.spec().context_length)
    fail(model.path(), "an MMLU prompt has {} tokens but the model's context is {}", longest, model.spec().context_length);
  KVCache cache = model.decoder().make_cache(capacity);
  std::vector<int32_t> cached;  // the tokens whose keys/values are in `cache`
  std::vector<float> logits;
  Decoder& decoder = model.decoder();
  int vocab = model.spec().vocab_size;

  // Evaluates `tokens` reusing the cache's common prefix (at most `keep_max` tokens of it).
  auto evaluate = [&](const std::vector<int32_t>& tokens, size_t keep_max, LogitsFor which) -> size_t {
    size_t common = options.reuse_prefix ? std::min(common_prefix(cached, tokens), keep_max) : 0;
    cache.truncate(static_cast<int>(common));
    std::span<const int32_t> rest(tokens.data() + common, tokens.size() - common);
    decoder.forward(rest, cache, logits, which, pool);
    result.evaluated_tokens += static_cast<long>(rest.size());
    cached = tokens;
    return common;
  };

  bool any_fallback = false, any_single = false;
  int done = 0;
  auto start = Clock::now();
  for (size_t s = 0; s < subjects.size(); ++s) {
    MmluSubjectResult sr;
    sr.name = subjects[s].name;
    cache.clear();
    cached.clear();
    if (options.reuse_prefix && !headers[s].empty()) {
      // The shared few-shot header, evaluated once per subject. A question whose joint
      // tokenization differs from it at the boundary reuses only the common part (evaluate()).
      decoder.forward(headers[s], cache, logits, LogitsFor::None, pool);
      result.evaluated_tokens += static_cast<long>(headers[s].size());
      cached = headers[s];
    }
    for (size_t i = 0; i < prompts[s].size(); ++i) {
      const auto& full = prompts[s][i];
      const std::string& ctx = contexts[s][i];
      std::array<float, 4> lp{};
      bool single = letters_single;
      std::array<std::vector<int32_t>, 4> wholes;
      for (int L = 0; L < 4; ++L) {
        wholes[L] = tok.encode(ctx + " " + char('A' + L), enc);
        if (single) {
          single = wholes[L].size() == full.size() + 1 && wholes[L].back() == letter_id[L] &&
                   std::equal(full.begin(), full.end(), wholes[L].begin());
        }
      }
      if (single) {
        any_single = true;
        evaluate(full, full.size() - 1, LogitsFor::Last);
        for (int L = 0; L < 4; ++L) lp[L] = log_prob(std::span<const float>(logits.data(), vocab), letter_id[L]);
      } else {
        any_fallback = true;
        size_t n_ctx = full.size();
        for (int L = 0; L < 4; ++L) {
          const auto& whole = wholes[L];
          if (whole.size() <= n_ctx) {
            lp[L] = -1e30f;  // the continuation vanished into the context's tokens
            continue;
          }
          // Logits are needed from position n_ctx - 1 on, so at most n_ctx - 1 cached tokens are kept.
          size_t start_pos = evaluate(std::vector<int32_t>(whole.begin(), whole.end() - 1), n_ctx - 1, LogitsFor::All);
          double sum = 0;
          for (size_t p = n_ctx; p < whole.size(); ++p)
            sum += log_prob(std::span<const float>(logits.data() + (p - 1 - start_pos) * vocab, vocab), whole[p]);
          lp[L] = static_cast<float>(sum);
        }
      }
      int pred = static_cast<int>(std::max_element(lp.begin(), lp.end()) - lp.begin());  // first max, as np.argmax
      sr.predictions.push_back(pred);
      sr.logprobs.push_back(lp);
      sr.correct += pred == subjects[s].test[i].answer;
      ++sr.questions;
      if (progress) progress(++done, total);
    }
    sr.accuracy = sr.questions ? static_cast<double>(sr.correct) / sr.questions : 0;
    result.questions += sr.questions;
    result.correct += sr.correct;
    result.subjects.push_back(std::move(sr));
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.accuracy = result.questions ? static_cast<double>(result.correct) / result.questions : 0;
  result.scoring = any_fallback ? (any_single ? "single forward where exact, else per continuation" : "per continuation") : "single forward";
  return result;
}

}  // namespace billion::eval
