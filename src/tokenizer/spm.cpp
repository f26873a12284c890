// The SentencePiece-style BPE tokenizer itself (see spm.h): lookup tables built once at load,
// then encode = special-token split → normalise (▁, dummy prefix) → BPE merge loop → byte
// fallback; decode = pieces with ▁ → space and <0xNN> → byte, minus the dummy-prefix space.
//
// Speed: the merge loop works on token ids, not strings. Start symbols come from a 128-entry
// ASCII table or a code-point map; a pair (left id, right id) is looked up in an open-addressing
// table giving (rank, merged id). Symbols form a linked list in a vector and candidate pairs sit
// in a binary heap ordered by (rank, position), so a word of n characters costs O(n log n), and
// the vectors are thread-local scratch reused across calls (no allocation once warm).
#include "tokenizer/spm.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "core/error.h"
#include "core/utf8.h"

namespace billion {
namespace {

constexpr std::string_view kMeta = "\xe2\x96\x81";  // U+2581 "▁"

bool starts_with_meta(std::string_view s, size_t pos) {
  return s.size() - pos >= 3 && s.compare(pos, 3, kMeta) == 0;
}

// "<0x41>" → 0x41; anything else → -1.
int parse_byte_piece(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int v = 0;
  for (size_t k = 3; k < 5; ++k) {
    const char c = text[k];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return -1;
    v = v * 16 + d;
  }
  return v;
}

std::string replace_meta(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t k = 0; k < text.size();) {
    if (starts_with_meta(text, k)) {
      out += ' ';
      k += 3;
    } else {
      out += text[k++];
    }
  }
  return out;
}

// One symbol of the merge loop: a byte range of the normalised text and its token (-1: the
// character has no token; byte fallback at the end). len == 0 marks a symbol merged away.
struct Symbol {
  int32_t start;
  int32_t len;
  int32_t prev;
  int32_t next;
  TokenId id;
};

// A candidate merge of symbols `left` and its right neighbour `right`. It is stale when either
// side changed since it was queued; `len` (the pair's byte length then) detects that.
struct Candidate {
  int32_t rank;
  int32_t left;
  int32_t right;
  int32_t len;
  TokenId merged;
};

// Heap order: the lowest rank first, then the leftmost (std heaps put the "largest" on top).
struct CandidateAfter {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  }
};

struct Scratch {
  std::string normalized;
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

// ---- pair table ------------------------------------------------------------------------------

void SpmTokenizer::PairTable::build(const std::vector<std::pair<uint64_t, Value>>& entries) {
  size_t capacity = 16;
  while (capacity < entries.size() * 2) capacity *= 2;  // load factor ≤ 0.5: short probes
  shift_ = 64 - std::countr_zero(capacity);
  keys_.assign(capacity, kEmpty);
  values_.assign(capacity, Value{0, -1});
  for (const auto& [key, value] : entries) {
    size_t k = slot(key);
    while (keys_[k] != kEmpty && keys_[k] != key) k = (k + 1) & (capacity - 1);
    if (keys_[k] == key) continue;  // first (best-ranked) rule for a pair wins
    keys_[k] = key;
    values_[k] = value;
  }
}

const SpmTokenizer::PairTable::Value* SpmTokenizer::PairTable::find(TokenId left, TokenId right) const {
  if (keys_.empty()) return nullptr;
  const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  const size_t mask = keys_.size() - 1;
  for (size_t k = slot(key);; k = (k + 1) & mask) {
    if (keys_[k] == key) return &values_[k];
    if (keys_[k] == kEmpty) return nullptr;
  }
}

// ---- construction ----------------------------------------------------------------------------

SpmTokenizer::SpmTokenizer(SpmModel model)
    : source_(std::move(model.source)),
      texts_(std::move(model.texts)),
      scores_(std::move(model.scores)),
      kinds_(std::move(model.kinds)),
      special_(std::move(model.special)),
      options_(model.options) {
  if (texts_.empty()) fail(source_, "the vocabulary is empty");
  scores_.resize(texts_.size(), 0.0f);
  kinds_.resize(texts_.size(), TokenKind::Normal);
  if (texts_.size() > static_cast<size_t>(INT32_MAX / 2)) fail(source_, "vocabulary too large ({} tokens)", texts_.size());
  auto check = [&](const std::optional<TokenId>& id, const char* what) {
    if (id && (*id < 0 || static_cast<size_t>(*id) >= texts_.size()))
      fail(source_, "{} token id {} is outside the vocabulary ({} tokens)", what, *id, texts_.size());
  };
  check(special_.bos, "BOS");
  check(special_.eos, "EOS");
  check(special_.unk, "unknown");
  check(special_.pad, "padding");
  check(special_.eot, "end-of-turn");
  for (TokenId id : special_.extra_eos) check(id, "end-of-generation");
  build_tables(std::move(model.merges));
}

void SpmTokenizer::build_tables(std::vector<std::pair<TokenId, TokenId>> merges) {
  const auto n = static_cast<TokenId>(texts_.size());
  byte_ids_.fill(-1);
  ascii_ids_.fill(-1);
  bytes_.resize(texts_.size());
  by_text_.reserve(texts_.size());
  auto mergeable = [&](TokenId id) {
    const TokenKind k = kinds_[id];
    return options_.merge_any_token ||
           k == TokenKind::Normal || k == TokenKind::UserDefined || k == TokenKind::Unused;
  };

  for (TokenId id = 0; id < n; ++id) {
    const std::string& text = texts_[id];
    by_text_.emplace(std::string_view(text), id);  // keeps the first id of a duplicated text
    if (kinds_[id] == TokenKind::Byte) {
      const int b = parse_byte_piece(text);
      if (b < 0) fail(source_, "token {} is a byte token but its text {} is not <0xNN>", id, printable(text));
      bytes_[id] = std::string(1, static_cast<char>(b));
      if (byte_ids_[b] < 0) byte_ids_[b] = id;
      continue;
    }
    // Control and unknown tokens decode to their text (as HF does without skip_special).
    bytes_[id] = (kinds_[id] == TokenKind::Control || kinds_[id] == TokenKind::Unknown) ? text : replace_meta(text);
    if (text.empty() || !mergeable(id)) continue;
    size_t pos = 0;
    const uint32_t cp = decode_utf8(text, pos);
    if (pos != text.size() || (cp == 0xfffd && text != "\xef\xbf\xbd")) continue;  // not one valid character
    if (cp < 128) {
      if (ascii_ids_[cp] < 0) ascii_ids_[cp] = id;
    } else {
      char_ids_.emplace(cp, id);
    }
  }

  // Special-token text matched in the input: control/unknown only when asked, user-defined always.
  for (TokenId id = 0; id < n; ++id) {
    const TokenKind k = kinds_[id];
    if (texts_[id].empty()) continue;
    if (k == TokenKind::Control || k == TokenKind::Unknown || k == TokenKind::UserDefined) {
      const bool always = k == TokenKind::UserDefined;
      specials_.push_back({texts_[id], id, always});
      special_first_byte_[static_cast<uint8_t>(texts_[id][0])] = true;
      has_always_specials_ |= always;
    }
  }
  std::stable_sort(specials_.begin(), specials_.end(),
                   [](const Special& a, const Special& b) { return a.text.size() > b.text.size(); });

  std::vector<std::pair<uint64_t, PairTable::Value>> entries;
  auto key = [](TokenId l, TokenId r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  };
  if (!merges.empty()) {
    // tokenizer.json: the rank is the position in the merges list.
    entries.reserve(merges.size());
    std::string joined;
    for (size_t r = 0; r < merges.size(); ++r) {
      const auto [l, rt] = merges[r];
      if (l < 0 || rt < 0 || l >= n || rt >= n) fail(source_, "merge {} refers to a token outside the vocabulary", r);
      joined = texts_[l] + texts_[rt];
      auto it = by_text_.find(joined);
      if (it == by_text_.end()) {
        fail(source_, "merge {} ({} {}) makes {}, which is not in the vocabulary", r, printable(texts_[l]),
             printable(texts_[rt]), printable(joined));
      }
      entries.push_back({key(l, rt), {static_cast<int32_t>(r), it->second}});
    }
  } else {
    // SentencePiece / llama.cpp: merging a pair is allowed when the concatenation is a token,
    // and the best pair is the one whose result scores highest. Scores become dense ranks
    // (equal scores share a rank, so the leftmost pair wins ties, as in both references).
    std::vector<float> distinct;
    for (TokenId id = 0; id < n; ++id)
      if (mergeable(id)) distinct.push_back(std::isnan(scores_[id]) ? -INFINITY : scores_[id]);
    std::sort(distinct.begin(), distinct.end(), std::greater<float>());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    for (TokenId id = 0; id < n; ++id) {
      if (!mergeable(id)) continue;
      const std::string_view text = texts_[id];
      const float score = std::isnan(scores_[id]) ? -INFINITY : scores_[id];
      const auto rank = static_cast<int32_t>(
          std::lower_bound(distinct.begin(), distinct.end(), score, std::greater<float>()) - distinct.begin());
      for (size_t cut = 1; cut < text.size(); ++cut) {
        if ((static_cast<uint8_t>(text[cut]) & 0xc0) == 0x80) continue;  // inside a character
        auto l = by_text_.find(text.substr(0, cut));
        if (l == by_text_.end() || !mergeable(l->second)) continue;
        auto r = by_text_.find(text.substr(cut));
        if (r == by_text_.end() || !mergeable(r->second)) continue;
        entries.push_back({key(l->second, r->second), {rank, id}});
      }
    }
    // Equal (left, right) pairs always make the same text; keep the lowest id deterministically.
    std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : a.second.merged < b.second.merged;
    });
  }
  pairs_.build(entries);
}

// ---- encoding --------------------------------------------------------------------------------

std::vector<TokenId> SpmTokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  if (options.add_special && special_.add_bos && special_.bos) out.push_back(*special_.bos);

  if (!options.parse_special && !has_always_specials_) {
    encode_text(text, options_.prefix != SpmPrefix::Never, out);
  } else {
    // Leftmost-longest match of special-token text; the stretches between go through BPE.
    size_t segment = 0;
    bool after_user_defined = false;
    auto wants_prefix = [&](size_t start) {
      if (options_.prefix == SpmPrefix::First) return start == 0;
      return options_.prefix == SpmPrefix::Always && (start == 0 || !after_user_defined || options_.prefix_after_user_defined);
    };
    for (size_t pos = 0; pos < text.size();) {
      if (!special_first_byte_[static_cast<uint8_t>(text[pos])]) {
        ++pos;
        continue;
      }
      const Special* hit = nullptr;
      for (const Special& s : specials_) {
        if ((options.parse_special || s.always) && text.compare(pos, s.text.size(), s.text) == 0) {
          hit = &s;
          break;
        }
      }
      if (!hit) {
        ++pos;
        continue;
      }
      if (pos > segment) encode_text(text.substr(segment, pos - segment), wants_prefix(segment), out);
      out.push_back(hit->id);
      after_user_defined = hit->always;
      pos += hit->text.size();
      segment = pos;
    }
    if (segment < text.size()) encode_text(text.substr(segment), wants_prefix(segment), out);
  }

  if (options.add_special && special_.add_eos && special_.eos) out.push_back(*special_.eos);
  return out;
}

void SpmTokenizer::encode_text(std::string_view text, bool want_prefix, std::vector<TokenId>& out) const {
  if (options_.remove_extra_whitespace) {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  }
  if (text.empty()) return;  // nothing to encode: no dummy prefix either

  std::string& norm = scratch().normalized;
  norm.clear();
  bool prefix = want_prefix;
  if (prefix && !options_.prefix_even_if_space && (text.front() == ' ' || starts_with_meta(text, 0))) prefix = false;
  if (prefix) norm += kMeta;
  bool previous_space = false;
  for (char c : text) {
    if (c == ' ') {
      if (options_.remove_extra_whitespace && previous_space) continue;
      previous_space = true;
      if (options_.escape_whitespace) {
        norm += kMeta;
        continue;
      }
    } else {
      previous_space = false;
    }
    norm += c;
  }
  if (norm.size() > static_cast<size_t>(INT32_MAX / 2)) fail(source_, "text too long to tokenize ({} bytes)", norm.size());
  bpe(norm, out);
}

TokenId SpmTokenizer::char_id(std::string_view s, size_t pos, size_t len) const {
  const auto b = static_cast<uint8_t>(s[pos]);
  if (b < 0x80) return ascii_ids_[b];
  if (len == 1) return -1;  // an invalid byte: byte fallback, never the U+FFFD token
  size_t p = pos;
  const uint32_t cp = decode_utf8(s, p);
  auto it = char_ids_.find(cp);
  return it == char_ids_.end() ? -1 : it->second;
}

void SpmTokenizer::bpe(std::string_view s, std::vector<TokenId>& out) const {
  Scratch& sc = scratch();
  auto& syms = sc.symbols;
  auto& heap = sc.heap;
  syms.clear();
  heap.clear();

  // Split into characters (invalid UTF-8: one byte per symbol).
  for (size_t pos = 0; pos < s.size();) {
    size_t len = 1;
    if (static_cast<uint8_t>(s[pos]) >= 0x80) {
      size_t p = pos;
      decode_utf8(s, p);
      len = p - pos;
    }
    const auto index = static_cast<int32_t>(syms.size());
    syms.push_back({static_cast<int32_t>(pos), static_cast<int32_t>(len), index - 1, index + 1, char_id(s, pos, len)});
    pos += len;
  }
  if (syms.empty()) return;
  syms.back().next = -1;

  auto try_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const TokenId a = syms[l].id, b = syms[r].id;
    if (a < 0 || b < 0) return;
    if (options_.split_on_metaspace && starts_with_meta(s, static_cast<size_t>(syms[r].start))) return;
    const auto* v = pairs_.find(a, b);
    if (!v) return;
    heap.push_back({v->rank, l, r, syms[l].len + syms[r].len, v->merged});
    std::push_heap(heap.begin(), heap.end(), CandidateAfter{});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(syms.size()); ++i) try_pair(i - 1, i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), CandidateAfter{});
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& left = syms[c.left];
    // Stale: the left symbol was merged away, its neighbour changed, or the neighbour grew.
    if (left.len == 0 || left.next != c.right || left.len + syms[c.right].len != c.len) continue;
    Symbol& right = syms[c.right];
    left.len += right.len;
    left.id = c.merged;
    left.next = right.next;
    right.len = 0;
    if (right.next >= 0) syms[right.next].prev = c.left;
    try_pair(left.prev, c.left);
    try_pair(c.left, left.next);
  }

  bool previous_unk = false;
  for (int32_t i = 0; i != -1; i = syms[i].next) {
    const Symbol& sym = syms[i];
    if (sym.id >= 0) {
      out.push_back(sym.id);
      previous_unk = false;
      continue;
    }
    const std::string_view bytes = s.substr(static_cast<size_t>(sym.start), static_cast<size_t>(sym.len));
    bool all_bytes = options_.byte_fallback;
    for (size_t k = 0; all_bytes && k < bytes.size(); ++k) all_bytes = byte_ids_[static_cast<uint8_t>(bytes[k])] >= 0;
    if (all_bytes) {
      for (char b : bytes) out.push_back(byte_ids_[static_cast<uint8_t>(b)]);
      previous_unk = false;
      continue;
    }
    if (!special_.unk) fail(source_, "no token for {} and no unknown token to stand for it", printable(bytes));
    if (!(options_.fuse_unk && previous_unk)) out.push_back(*special_.unk);
    previous_unk = true;
  }
}

// ---- decoding and lookups --------------------------------------------------------------------

void SpmTokenizer::bad_id(TokenId id) const {
  fail(source_, "token id {} is outside the vocabulary ({} tokens)", id, texts_.size());
}

std::string SpmTokenizer::decode(const std::vector<TokenId>& ids, bool skip_special) const {
  std::string out;
  for (TokenId id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= texts_.size()) bad_id(id);
    const TokenKind k = kinds_[id];
    if (skip_special && (k == TokenKind::Control || k == TokenKind::Unknown)) continue;
    out += bytes_[id];
  }
  // HF's Strip decoder (and SentencePiece) remove the one space the dummy prefix added; like HF
  // this looks at the start of the whole text, so "<s> Hello" keeps its space.
  if (options_.strip_decoded_space && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

std::string SpmTokenizer::token_bytes(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= texts_.size()) bad_id(id);
  return bytes_[id];
}

const std::string& SpmTokenizer::token_text(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= texts_.size()) bad_id(id);
  return texts_[id];
}

TokenKind SpmTokenizer::token_kind(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= texts_.size()) bad_id(id);
  return kinds_[id];
}

std::optional<TokenId> SpmTokenizer::token_id(std::string_view text) const {
  auto it = by_text_.find(text);
  if (it == by_text_.end()) return std::nullopt;
  return it->second;
}

std::vector<SpmTokenizer::MergeRule> SpmTokenizer::merge_rules() const {
  std::vector<MergeRule> rules;
  pairs_.for_each([&](uint64_t key, const PairTable::Value& v) {
    rules.push_back({static_cast<TokenId>(key >> 32), static_cast<TokenId>(key & 0xffffffffu), v.merged, v.rank});
  });
  std::sort(rules.begin(), rules.end(), [](const MergeRule& a, const MergeRule& b) {
    if (a.rank != b.rank) return a.rank < b.rank;
    return a.left != b.left ? a.left < b.left : a.right < b.right;
  });
  return rules;
}

}  // namespace billion
