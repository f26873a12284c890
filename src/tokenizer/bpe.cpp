// The byte-level BPE engine (see bpe.h): added-token splitting, normalisation, pre-tokenization,
// then per word: cache → whole-word lookup (ignore_merges) → merges by rank. Matches HF
// tokenizers' order of operations so ids agree exactly.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <climits>
#include <queue>

#include "core/error.h"
#include "core/utf8.h"

namespace billion {

namespace {

constexpr size_t kSmallWord = 96;       // words up to this many symbols use the array merger
constexpr size_t kMaxCachedWord = 64;   // longer words are rare; caching them only costs memory
constexpr size_t kCacheSlots = 1 << 17;  // per thread and tokenizer: 3 MB of slots
constexpr size_t kMaxCacheEntries = kCacheSlots / 2;

std::atomic<uint64_t> next_serial{1};

// A fast 64-bit hash of short byte strings (words are ~2-10 bytes); never 0 (0 = empty slot).
inline uint64_t hash_bytes(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    p += 8;
    n -= 8;
  }
  if (n) {
    uint64_t v = 0;
    std::memcpy(&v, p, n);
    h = (h ^ v) * 0x94d049bb133111ebull;
  }
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h | 1;
}

// Unicode White_Space (Rust's char::is_whitespace, used by HF for lstrip/rstrip).
bool is_white_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

// Letters, digits and '_' (approximating HF's word check for single_word tokens).
bool is_word_char(uint32_t cp) {
  if (cp < 0x80) return std::isalnum(static_cast<int>(cp)) || cp == '_';
  return !is_white_space(cp) && cp != 0xfffd;  // non-ASCII: count anything but spaces as a word char
}

}  // namespace

// (left, right) → (rank, merged id), open addressing with linear probing: the merge lookup is
// the innermost operation of BPE, so it must be one multiply and (usually) one cache line.
class BpeTokenizer::MergeMap {
 public:
  struct Entry {
    uint64_t key;
    int32_t rank;
    TokenId result;
  };

  explicit MergeMap(size_t n) {
    size_t capacity = 16;
    while (capacity < n * 2) capacity <<= 1;
    entries_.assign(capacity, Entry{kEmpty, 0, 0});
    mask_ = capacity - 1;
  }

  static uint64_t key(TokenId a, TokenId b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  // Keeps the first (best-ranked) rule for a pair.
  void insert(TokenId a, TokenId b, int32_t rank, TokenId result) {
    const uint64_t k = key(a, b);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      if (entries_[i].key == k) return;
      if (entries_[i].key == kEmpty) {
        entries_[i] = {k, rank, result};
        return;
      }
    }
  }

  const Entry* find(TokenId a, TokenId b) const {
    const uint64_t k = key(a, b);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      const Entry& e = entries_[i];
      if (e.key == k) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  size_t slot(uint64_t k) const { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> 32) & mask_; }
  std::vector<Entry> entries_;
  size_t mask_;
};

// Immutable bytes → id table over the vocabulary's own strings (whole-word lookups).
class BpeTokenizer::WordMap {
 public:
  explicit WordMap(size_t n) {
    size_t capacity = 16;
    while (capacity < n * 2) capacity <<= 1;
    slots_.assign(capacity, Slot{0, nullptr, 0, 0});
    mask_ = capacity - 1;
  }
  void insert(std::string_view key, TokenId id) {  // first insertion wins
    const uint64_t h = hash_bytes(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& e = slots_[i];
      if (e.hash == 0) {
        e = {h, key.data(), static_cast<uint32_t>(key.size()), id};
        return;
      }
      if (e.hash == h && std::string_view(e.key, e.len) == key) return;
    }
  }
  TokenId find(std::string_view key) const {
    const uint64_t h = hash_bytes(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& e = slots_[i];
      if (e.hash == 0) return -1;
      if (e.hash == h && std::string_view(e.key, e.len) == key) return e.id;
    }
  }

 private:
  struct Slot {
    uint64_t hash;
    const char* key;  // into BpeTokenizer::bytes_, which never changes after construction
    uint32_t len;
    TokenId id;
  };
  std::vector<Slot> slots_;
  size_t mask_;
};

// word → ids, one per thread and tokenizer, so lookups take no lock. Open addressing over an
// arena of keys and ids; emptied wholesale when half full (cheaper than any eviction policy,
// and the frequent words come straight back).
class BpeTokenizer::WordCache {
 public:
  WordCache() : slots_(kCacheSlots, Slot{0, 0, 0, 0, 0}) {}
  void clear() {
    std::fill(slots_.begin(), slots_.end(), Slot{0, 0, 0, 0, 0});
    keys_.clear();
    ids_.clear();
    used_ = 0;
  }
  bool find(std::string_view word, uint64_t h, std::vector<TokenId>& out) const {
    for (size_t i = h & (kCacheSlots - 1);; i = (i + 1) & (kCacheSlots - 1)) {
      const Slot& e = slots_[i];
      if (e.hash == 0) return false;
      if (e.hash == h && e.key_len == word.size() && std::memcmp(keys_.data() + e.key_offset, word.data(), word.size()) == 0) {
        out.insert(out.end(), ids_.begin() + e.ids_offset, ids_.begin() + e.ids_offset + e.n_ids);
        return true;
      }
    }
  }
  void insert(std::string_view word, uint64_t h, const std::vector<TokenId>& ids) {
    if (used_ >= kMaxCacheEntries) clear();
    for (size_t i = h & (kCacheSlots - 1);; i = (i + 1) & (kCacheSlots - 1)) {
      Slot& e = slots_[i];
      if (e.hash != 0) continue;  // (a word is only inserted after a failed find)
      e = {h, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(ids_.size()),
           static_cast<uint16_t>(word.size()), static_cast<uint16_t>(ids.size())};
      keys_.append(word);
      ids_.insert(ids_.end(), ids.begin(), ids.end());
      ++used_;
      return;
    }
  }

 private:
  struct Slot {
    uint64_t hash;
    uint32_t key_offset, ids_offset;
    uint16_t key_len, n_ids;
  };
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<TokenId> ids_;
  size_t used_ = 0;
};

BpeTokenizer::WordCache& BpeTokenizer::thread_cache() const {
  // A few slots per thread, keyed by tokenizer serial: alternating between two tokenizers in one
  // thread keeps both caches.
  struct Entry {
    uint64_t serial = 0;
    std::unique_ptr<WordCache> cache;
  };
  thread_local std::array<Entry, 4> entries;
  thread_local unsigned next = 0;
  for (auto& e : entries)
    if (e.serial == serial_) return *e.cache;
  Entry& e = entries[next++ % entries.size()];
  e.serial = serial_;
  if (e.cache) e.cache->clear();
  else e.cache = std::make_unique<WordCache>();
  return *e.cache;
}

BpeTokenizer::BpeTokenizer(BpeSpec spec)
    : source_(std::move(spec.source)),
      texts_(std::move(spec.texts)),
      bytes_(std::move(spec.bytes)),
      kinds_(std::move(spec.kinds)),
      ignore_merges_(spec.ignore_merges),
      added_(std::move(spec.added)),
      normalizer_(std::move(spec.normalizer)),
      pre_tokenizer_(std::move(spec.pre_tokenizer)),
      special_(std::move(spec.special)),
      prefix_(std::move(spec.prefix)),
      suffix_(std::move(spec.suffix)),
      serial_(next_serial.fetch_add(1)) {
  const size_t n = texts_.size();
  if (bytes_.size() != n || kinds_.size() != n)
    fail(source_, "internal: {} token texts but {} byte strings and {} kinds", n, bytes_.size(), kinds_.size());
  for (auto& t : added_) {
    if (t.id < 0 || static_cast<size_t>(t.id) >= n) fail(source_, "added token {} has id {} outside the vocabulary", printable(t.content), t.id);
    text_to_id_.emplace(t.content, t.id);
  }
  bytes_to_id_ = std::make_unique<WordMap>(n);
  for (size_t id = 0; id < n; ++id) {
    if (kinds_[id] == TokenKind::Unused && texts_[id].empty()) continue;
    text_to_id_.emplace(texts_[id], static_cast<TokenId>(id));
    if (kinds_[id] == TokenKind::Normal) bytes_to_id_->insert(bytes_[id], static_cast<TokenId>(id));
  }
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    byte_token_[b] = bytes_to_id_->find(std::string_view(&c, 1));
  }

  merges_ = std::make_unique<MergeMap>(spec.merges.size());
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const auto& m = spec.merges[r];
    if (m.left < 0 || m.right < 0 || m.result < 0) continue;  // a placeholder keeping later ranks
    const int32_t rank = spec.rank_of.empty() ? static_cast<int32_t>(r) : spec.rank_of[r];
    merges_->insert(m.left, m.right, rank, m.result);
  }

  added_by_byte_.resize(256);
  for (uint32_t k = 0; k < added_.size(); ++k)
    if (!added_[k].content.empty()) added_by_byte_[static_cast<uint8_t>(added_[k].content[0])].push_back(k);
  for (auto& list : added_by_byte_) {
    std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) {
      return added_[a].content.size() > added_[b].content.size();
    });
  }
}

BpeTokenizer::~BpeTokenizer() = default;

void BpeTokenizer::check_id(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= texts_.size())
    fail(source_, "token id {} is out of range (vocabulary has {} tokens)", id, texts_.size());
}

std::string BpeTokenizer::token_bytes(TokenId id) const {
  check_id(id);
  return bytes_[id];
}

const std::string& BpeTokenizer::token_text(TokenId id) const {
  check_id(id);
  return texts_[id];
}

TokenKind BpeTokenizer::token_kind(TokenId id) const {
  check_id(id);
  return kinds_[id];
}

std::optional<TokenId> BpeTokenizer::token_id(std::string_view text) const {
  auto it = text_to_id_.find(std::string(text));
  if (it == text_to_id_.end()) return std::nullopt;
  return it->second;
}

std::string BpeTokenizer::decode(const std::vector<TokenId>& ids, bool skip_special) const {
  std::string out;
  for (TokenId id : ids) {
    check_id(id);
    if (skip_special && kinds_[id] == TokenKind::Control) continue;
    out += bytes_[id];
  }
  return out;
}

// HF AddedVocabulary: leftmost-longest match over all added tokens; a special token found while
// parse_special is off is skipped whole (its text then goes through BPE like any other text).
bool BpeTokenizer::next_added(std::string_view text, size_t from, bool parse_special, Match& m) const {
  if (added_.empty()) return false;
  for (size_t i = from; i < text.size(); ++i) {
    const auto& candidates = added_by_byte_[static_cast<uint8_t>(text[i])];
    for (uint32_t k : candidates) {
      const AddedToken& t = added_[k];
      if (text.compare(i, t.content.size(), t.content) != 0) continue;
      size_t begin = i, end = i + t.content.size();
      bool skip = t.special && !parse_special;
      if (!skip && t.single_word) {
        size_t p = 0;
        bool word_before = false, word_after = false;
        if (begin > 0) {  // find the start of the character before the match
          size_t q = begin - 1;
          while (q > 0 && (static_cast<uint8_t>(text[q]) & 0xc0) == 0x80) --q;
          p = q;
          word_before = is_word_char(decode_utf8(text, p));
        }
        if (end < text.size()) {
          p = end;
          word_after = is_word_char(decode_utf8(text, p));
        }
        skip = word_before || word_after;
      }
      if (skip) {
        i = end - 1;  // matches do not overlap: the search resumes after this one
        break;
      }
      if (t.lstrip) {
        while (begin > from) {
          size_t q = begin - 1;
          while (q > from && (static_cast<uint8_t>(text[q]) & 0xc0) == 0x80) --q;
          size_t p = q;
          if (!is_white_space(decode_utf8(text, p)) || p != begin) break;
          begin = q;
        }
      }
      if (t.rstrip) {
        while (end < text.size()) {
          size_t p = end;
          if (!is_white_space(decode_utf8(text, p))) break;
          end = p;
        }
      }
      m = {begin, end, &t};
      return true;
    }
  }
  return false;
}

std::vector<TokenId> BpeTokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + prefix_.size() + suffix_.size() + 4);
  if (options.add_special) out.insert(out.end(), prefix_.begin(), prefix_.end());
  WordCache& cache = thread_cache();
  size_t pos = 0;
  Match m;
  while (next_added(text, pos, options.parse_special, m)) {
    encode_plain(text.substr(pos, m.begin - pos), out, cache);
    out.push_back(m.token->id);
    pos = m.end;
  }
  encode_plain(text.substr(pos), out, cache);
  if (options.add_special) out.insert(out.end(), suffix_.begin(), suffix_.end());
  return out;
}

std::vector<std::string> BpeTokenizer::pre_tokenize(std::string_view text, bool parse_special) const {
  std::vector<std::string> words;
  auto plain = [&](std::string_view segment) {
    if (segment.empty()) return;
    PreTokenized p;
    if (normalizer_) {
      std::string normalized;
      normalizer_->normalize(segment, normalized);
      p.reset(normalized);
    } else {
      p.reset(segment);
    }
    if (pre_tokenizer_) pre_tokenizer_->apply(p);
    for (const auto& s : p.spans) words.emplace_back(p.piece(s));
  };
  size_t pos = 0;
  Match m;
  while (next_added(text, pos, parse_special, m)) {
    plain(text.substr(pos, m.begin - pos));
    words.push_back(m.token->content);
    pos = m.end;
  }
  plain(text.substr(pos));
  return words;
}

void BpeTokenizer::encode_plain(std::string_view text, std::vector<TokenId>& out, WordCache& cache) const {
  if (text.empty()) return;
  thread_local PreTokenized p;
  thread_local std::string normalized;
  if (normalizer_) {
    normalizer_->normalize(text, normalized);
    p.reset(normalized);
  } else {
    p.reset(text);
  }
  if (pre_tokenizer_) pre_tokenizer_->apply(p);
  for (const auto& s : p.spans) encode_word(p.piece(s), out, cache);
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<TokenId>& out, WordCache& cache) const {
  if (word.size() == 1 && byte_token_[static_cast<uint8_t>(word[0])] >= 0) {
    out.push_back(byte_token_[static_cast<uint8_t>(word[0])]);
    return;
  }
  if (ignore_merges_) {  // the vocabulary is the answer for most words: one lookup, no cache
    const TokenId id = bytes_to_id_->find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWord;
  const uint64_t h = cacheable ? hash_bytes(word) : 0;
  if (cacheable && cache.find(word, h, out)) return;
  thread_local std::vector<TokenId> symbols;
  symbols.clear();
  for (char c : word) {
    const TokenId id = byte_token_[static_cast<uint8_t>(c)];
    if (id >= 0) {
      symbols.push_back(id);
    } else if (!is_valid_utf8(word)) {
      // Not text HF could be given at all; dropping the byte would silently lose input.
      fail(source_, "cannot encode byte 0x{:02x} of invalid UTF-8 input {}: the vocabulary has no token for it",
           static_cast<uint8_t>(c), printable(word));
    }
    // else: a character whose byte has no token is dropped, as HF's BPE does without an unk token
  }
  merge_word(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
  if (cacheable) cache.insert(word, h, symbols);
}

// Repeatedly merges the adjacent pair with the lowest rank, leftmost first. Short words keep the
// pair ranks in an array (one lookup per changed pair, a linear scan for the minimum).
void BpeTokenizer::merge_word(std::vector<TokenId>& s) const {
  size_t len = s.size();
  if (len < 2) return;
  if (len > kSmallWord) {
    merge_word_large(s);
    return;
  }
  int32_t rank[kSmallWord];
  TokenId result[kSmallWord];
  auto lookup = [&](size_t i) {
    const MergeMap::Entry* e = merges_->find(s[i], s[i + 1]);
    rank[i] = e ? e->rank : INT32_MAX;
    result[i] = e ? e->result : -1;
  };
  for (size_t i = 0; i + 1 < len; ++i) lookup(i);
  while (len > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < len; ++i)
      if (rank[i] < rank[best]) best = i;
    if (rank[best] == INT32_MAX) break;
    s[best] = result[best];
    for (size_t j = best + 1; j + 1 < len; ++j) s[j] = s[j + 1];
    --len;
    for (size_t j = best + 1; j + 1 < len; ++j) {
      rank[j] = rank[j + 1];
      result[j] = result[j + 1];
    }
    if (best > 0) lookup(best - 1);
    if (best + 1 < len) lookup(best);
  }
  s.resize(len);
}

// Same result for long words in O(n log n): a heap of candidate pairs ordered by (rank,
// position) over a linked list of symbols; stale candidates are recognised and dropped.
void BpeTokenizer::merge_word_large(std::vector<TokenId>& s) const {
  struct Node {
    TokenId id;
    int32_t prev, next;
  };
  struct Candidate {
    int32_t rank, pos;
    TokenId left, right, result;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const auto n = static_cast<int32_t>(s.size());
  std::vector<Node> nodes(n);
  for (int32_t i = 0; i < n; ++i) nodes[i] = {s[i], i - 1, i + 1 < n ? i + 1 : -1};
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto push = [&](int32_t pos) {
    if (pos < 0 || nodes[pos].next < 0) return;
    const TokenId a = nodes[pos].id, b = nodes[nodes[pos].next].id;
    if (const MergeMap::Entry* e = merges_->find(a, b)) heap.push({e->rank, pos, a, b, e->result});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Node& left = nodes[c.pos];
    if (left.id != c.left || left.next < 0 || nodes[left.next].id != c.right) continue;  // stale
    Node& right = nodes[left.next];
    left.id = c.result;
    left.next = right.next;
    if (right.next >= 0) nodes[right.next].prev = c.pos;
    right.id = -1;
    push(left.prev);
    push(c.pos);
  }
  s.clear();
  for (int32_t i = 0; i >= 0; i = nodes[i].next) s.push_back(nodes[i].id);
}

}  // namespace billion
