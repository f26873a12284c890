// Speculative decoding: tokenizer compatibility, the model drafter, sampled verification and the
// draft → verify → roll back loop. The target's cache always holds the context except its last
// token, so every round is one forward pass over [last token, x1..xK] with logits for all K + 1
// positions: row i is the target's distribution for the token after x1..xi.
#include "generate/speculative.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"

namespace billion {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string show_id(const std::optional<TokenId>& id) { return id ? std::to_string(*id) : "none"; }

bool exact_accept(double p, double q, double r) {
  // r < p/q without dividing: q = 0 (a draft token the draft itself gave no mass, only through
  // rounding) is accepted when p > 0, and p = 0 is always rejected.
  return r * q < p;
}

void exact_residual(std::span<const float> p, std::span<const float> q, std::vector<float>& out) {
  out.assign(p.size(), 0.0f);
  double sum = 0;
  for (size_t j = 0; j < p.size(); ++j) {
    double d = double(p[j]) - (j < q.size() ? double(q[j]) : 0.0);
    if (d > 0) sum += out[j] = static_cast<float>(d);
  }
  // A rejection implies p(x) < q(x), so p − q has positive mass somewhere; only rounding can
  // leave none (HF divides by zero here). Fall back to p itself, which is then ≈ q.
  if (!(sum > 1e-12)) {
    out.assign(p.begin(), p.end());
    sum = 0;
    for (float v : out) sum += v;
  }
  for (auto& v : out) v = static_cast<float>(v / sum);
}

}  // namespace

void check_tokenizers_compatible(const Tokenizer& draft, const Tokenizer& target, const std::string& draft_name,
                                 const std::string& target_name) {
  auto mismatch = [&](const std::string& what) {
    throw Error(fmt::format("draft {} and target {} have incompatible tokenizers: {}", draft_name, target_name, what));
  };
  if (draft.kind() != target.kind()) mismatch(fmt::format("vocabulary type {} vs {}", draft.kind(), target.kind()));
  const auto& ds = draft.special_tokens();
  const auto& ts = target.special_tokens();
  if (ds.bos != ts.bos) mismatch(fmt::format("bos id {} vs {}", show_id(ds.bos), show_id(ts.bos)));
  if (ds.eos != ts.eos) mismatch(fmt::format("eos id {} vs {}", show_id(ds.eos), show_id(ts.eos)));
  if (ds.add_bos != ts.add_bos) mismatch(fmt::format("add_bos {} vs {}", ds.add_bos, ts.add_bos));
  if (ds.add_eos != ts.add_eos) mismatch(fmt::format("add_eos {} vs {}", ds.add_eos, ts.add_eos));
  const size_t dn = draft.vocab_size(), tn = target.vocab_size();
  if ((dn > tn ? dn - tn : tn - dn) > static_cast<size_t>(kMaxVocabSizeDifference))
    mismatch(fmt::format("vocabulary sizes {} vs {} differ by more than {}", dn, tn, kMaxVocabSizeDifference));
  for (size_t id = 5; id < std::min(dn, tn); ++id) {
    const auto& a = draft.token_text(static_cast<TokenId>(id));
    const auto& b = target.token_text(static_cast<TokenId>(id));
    if (a != b) mismatch(fmt::format("token {} is '{}' vs '{}'", id, a, b));
  }
}

const AcceptanceRule& exact_acceptance_rule() {
  static const AcceptanceRule rule{exact_accept, exact_residual};
  return rule;
}

VerifyOutcome verify_sampled(std::span<const int32_t> draft, std::span<const float> q, int q_width, std::span<const float> p,
                             int p_width, Sampler& rng, const AcceptanceRule& rule) {
  const size_t k = draft.size();
  if (p.size() != (k + 1) * p_width) throw Error(fmt::format("verify_sampled: {} target probabilities for {} rows of {}", p.size(), k + 1, p_width));
  if (!q.empty() && q.size() != k * q_width) throw Error(fmt::format("verify_sampled: {} draft probabilities for {} rows of {}", q.size(), k, q_width));
  std::vector<float> one_hot, residual;
  for (size_t i = 0; i < k; ++i) {
    const int32_t x = draft[i];
    std::span<const float> p_row = p.subspan(i * p_width, p_width);
    std::span<const float> q_row;
    if (q.empty()) {  // a deterministic draft: q is one-hot on x
      one_hot.assign(p_width, 0.0f);
      if (x >= 0 && x < p_width) one_hot[x] = 1.0f;
      q_row = one_hot;
    } else {
      q_row = q.subspan(i * q_width, q_width);
    }
    const double px = x >= 0 && x < p_width ? p_row[x] : 0.0;
    const double qx = q.empty() ? 1.0 : (x >= 0 && x < q_width ? q_row[x] : 0.0);
    if (rule.accept(px, qx, rng.uniform())) continue;
    rule.residual(p_row, q_row, residual);
    return {static_cast<int>(i), rng.draw(residual)};
  }
  std::vector<float> bonus(p.end() - p_width, p.end());
  return {static_cast<int>(k), rng.draw(bonus)};
}

int adapt_k(int k, int proposed, int accepted, int k_max) {
  if (proposed < k) return k;
  if (accepted == proposed) return std::min(k + 1, k_max);
  if (2 * accepted < proposed) return std::max(k - 1, 1);
  return k;
}

void SpeculativeStats::add(const SpeculativeStats& o) {
  passes += o.passes;
  drafted += o.drafted;
  accepted += o.accepted;
  generated += o.generated;
  k_sum += o.k_sum;
  if (drafted_at.size() < o.drafted_at.size()) drafted_at.resize(o.drafted_at.size()), accepted_at.resize(o.drafted_at.size());
  for (size_t i = 0; i < o.drafted_at.size(); ++i) drafted_at[i] += o.drafted_at[i], accepted_at[i] += o.accepted_at[i];
  prefill_seconds += o.prefill_seconds;
  draft_seconds += o.draft_seconds;
  target_seconds += o.target_seconds;
  total_seconds += o.total_seconds;
}

// ---- model drafter ----

ModelDrafter::ModelDrafter(Model& model, int capacity, KVType kv_type, const SamplingOptions& sampling, ThreadPool& pool)
    : model_(model), cache_(model.decoder().make_cache(capacity, kv_type)), sampler_([&] {
        // Its own stream of draws, so the target's accept/reject draws stay independent of q's.
        SamplingOptions s = sampling;
        s.seed = sampling.seed ^ 0x9e3779b97f4a7c15ull;
        return s;
      }()),
      pool_(pool) {}

void ModelDrafter::sync(const std::vector<int32_t>& context) {
  if (cached_ == context && !logits_.empty()) return;
  // Keep the common prefix (at most all but one token: logits need an evaluated token).
  size_t common = 0;
  size_t limit = std::min({cached_.size(), context.size() - 1, static_cast<size_t>(cache_.size())});
  while (common < limit && cached_[common] == context[common]) ++common;
  cache_.truncate(static_cast<int>(common));
  cached_.resize(common);
  std::span<const int32_t> rest(context.data() + common, context.size() - common);
  model_.decoder().forward(rest, cache_, logits_, LogitsFor::Last, pool_);
  cached_.insert(cached_.end(), rest.begin(), rest.end());
}

void ModelDrafter::begin(const std::vector<int32_t>& prompt) {
  cache_.clear();
  cached_.clear();
  logits_.clear();
  sync(prompt);
}

void ModelDrafter::propose(const std::vector<int32_t>& context, int k, std::vector<int32_t>& tokens, std::vector<float>& q) {
  tokens.clear();
  q.clear();
  if (k <= 0) return;
  sync(context);
  const int width = q_width();
  const auto& stops = model_.stop_ids();
  std::vector<int32_t> history = context;  // for repetition/presence penalties, as the target sees them
  std::vector<float> probs;
  for (int i = 0; i < k; ++i) {
    sampler_.probabilities(logits_, history, probs);  // [vocab], after every processor
    int32_t x = sampler_.greedy() ? argmax(probs) : sampler_.draw(probs);
    tokens.push_back(x);
    q.insert(q.end(), probs.begin(), probs.begin() + width);
    history.push_back(x);
    // A stop token ends the text: nothing after it can be accepted. The last token needs no
    // evaluation (its successor is not drafted); sync() evaluates it next round if accepted.
    if (std::binary_search(stops.begin(), stops.end(), x) || i + 1 == k) break;
    if (cache_.size() >= cache_.capacity()) break;
    model_.decoder().forward(std::span<const int32_t>(&x, 1), cache_, logits_, LogitsFor::Last, pool_);
    cached_.push_back(x);
  }
}

// ---- the loop ----

SpeculativeResult speculative_generate(Model& target, KVCache& cache, Drafter& drafter, const std::vector<int32_t>& prompt,
                                       const SpeculativeOptions& options, ThreadPool& pool, const TextCallback& on_text) {
  if (options.k < 1 || options.k > kMaxDraftTokens)
    throw Error(fmt::format("speculative decoding: K = {} draft tokens is outside 1..{}", options.k, kMaxDraftTokens));
  if (prompt.empty()) throw Error("speculative decoding: the prompt is empty (no tokens to start from)");
  const int n = static_cast<int>(prompt.size());
  if (n >= cache.capacity())
    throw Error(fmt::format("the prompt has {} tokens but the target's context holds {}; shorten it or raise --ctx", n, cache.capacity()));
  if (n >= drafter.capacity())
    throw Error(fmt::format("the prompt has {} tokens but the draft's context holds {}; shorten it or raise --ctx", n, drafter.capacity()));
  const int k_max = options.k_max > 0 ? std::min(options.k_max, kMaxDraftTokens) : std::min(2 * options.k, kMaxDraftTokens);
  const AcceptanceRule& rule = options.rule ? *options.rule : exact_acceptance_rule();
  const int vocab = target.spec().vocab_size;
  const int q_width = drafter.q_width();
  const auto& stop_ids = target.stop_ids();

  SpeculativeResult result;
  SpeculativeStats& st = result.stats;
  Sampler sampler(options.sampling);
  const bool greedy = sampler.greedy();
  Decoder& decoder = target.decoder();
  StreamingDecoder stream(target.tokenizer());
  std::vector<float> logits;  // [K + 1, vocab]
  std::vector<int32_t> context = prompt;

  // Prompt: the target takes all but the last token (which opens the first verification pass).
  auto start = Clock::now();
  cache.clear();
  if (n > 1) decoder.forward(std::span<const int32_t>(prompt.data(), n - 1), cache, logits, LogitsFor::None, pool);
  drafter.begin(prompt);
  st.prefill_seconds = seconds_since(start);

  int k = options.k;
  std::vector<int32_t> draft, batch, history, choice;
  std::vector<float> q, p, row;
  while (result.stop_reason.empty()) {
    const int remaining = options.max_new_tokens - st.generated;
    if (remaining <= 0) {
      result.stop_reason = "length";
      break;
    }
    // The pass appends 1 + k entries to a cache holding context.size() − 1.
    const int room = cache.capacity() - static_cast<int>(context.size());
    if (room < 0) {
      result.stop_reason = "context";
      break;
    }
    const int k_now = std::min({k, remaining - 1, room, drafter.capacity() - static_cast<int>(context.size())});

    auto t0 = Clock::now();
    draft.clear();
    q.clear();
    if (k_now > 0) drafter.propose(context, k_now, draft, q);
    if (static_cast<int>(draft.size()) > k_now) draft.resize(k_now), q.resize(q_width > 0 ? k_now * q_width : 0);
    st.draft_seconds += seconds_since(t0);

    auto t1 = Clock::now();
    const int kd = static_cast<int>(draft.size());
    batch.assign(1, context.back());
    batch.insert(batch.end(), draft.begin(), draft.end());
    decoder.forward(batch, cache, logits, LogitsFor::All, pool);  // logits [kd + 1, vocab]
    VerifyOutcome out;
    history = context;
    if (greedy) {
      // Accept x_i iff it is the target's own choice after x_1..x_{i-1}.
      out.accepted = kd;
      for (int i = 0; i <= kd; ++i) {
        int32_t t = sampler.sample(std::span<const float>(logits.data() + size_t(i) * vocab, vocab), history);
        if (i == kd || t != draft[i]) {
          out.accepted = i;
          out.next = t;
          break;
        }
        history.push_back(draft[i]);
      }
    } else {
      p.resize(size_t(kd + 1) * vocab);
      for (int i = 0; i <= kd; ++i) {
        sampler.probabilities(std::span<const float>(logits.data() + size_t(i) * vocab, vocab), history, row);
        std::copy(row.begin(), row.end(), p.begin() + size_t(i) * vocab);
        if (i < kd) history.push_back(draft[i]);
      }
      out = verify_sampled(draft, q, q_width, p, vocab, sampler, rule);
    }
    // Roll back: keep the context (minus its last token, re-fed next round), the last token and
    // the accepted draft tokens; the next round starts from the new token.
    cache.truncate(static_cast<int>(context.size()) + out.accepted);
    st.target_seconds += seconds_since(t1);

    st.passes += 1;
    st.k_sum += k_now;
    st.drafted += kd;
    st.accepted += out.accepted;
    if (static_cast<int>(st.drafted_at.size()) < kd) st.drafted_at.resize(kd), st.accepted_at.resize(kd);
    for (int i = 0; i < kd; ++i) st.drafted_at[i] += 1, st.accepted_at[i] += i < out.accepted;
    if (options.adaptive && k_now == k) k = adapt_k(k, kd, out.accepted, k_max);

    choice.assign(draft.begin(), draft.begin() + out.accepted);
    choice.push_back(out.next);
    for (int32_t token : choice) {
      context.push_back(token);
      result.tokens.push_back(token);
      st.generated += 1;
      if (options.stop_at_eos && std::binary_search(stop_ids.begin(), stop_ids.end(), token)) {
        result.stop_reason = "eos";
        break;
      }
      std::string piece = stream.push(token);
      result.text += piece;
      if (on_text && !piece.empty()) on_text(piece);
      if (st.generated >= options.max_new_tokens) {
        result.stop_reason = "length";
        break;
      }
    }
  }
  std::string tail = stream.finish();
  result.text += tail;
  if (on_text && !tail.empty()) on_text(tail);
  st.total_seconds = seconds_since(start);
  return result;
}

}  // namespace billion
