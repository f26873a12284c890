// Prompt-lookup drafting: a backwards scan for the latest earlier occurrence of the context's
// final n-gram. O(context × n) per proposal, negligible next to one forward pass.
#include "generate/lookup_draft.h"

#include <algorithm>

#include "core/error.h"

namespace billion {

LookupDrafter::LookupDrafter(int max_ngram, int min_ngram) : max_ngram_(max_ngram), min_ngram_(min_ngram) {
  if (min_ngram < 1 || max_ngram < min_ngram)
    throw Error(fmt::format("lookup drafter: n-gram sizes {}..{} are not 1 <= min <= max", min_ngram, max_ngram));
}

void LookupDrafter::propose(const std::vector<int32_t>& context, int k, std::vector<int32_t>& tokens, std::vector<float>& q) {
  tokens.clear();
  q.clear();
  const int len = static_cast<int>(context.size());
  if (k <= 0) return;
  for (int n = std::min(max_ngram_, len - 1); n >= min_ngram_; --n) {
    const int32_t* tail = context.data() + len - n;  // the pattern: the last n tokens
    // Latest start s < len − n whose n tokens equal the pattern; what follows it is the draft.
    for (int s = len - n - 1; s >= 0; --s) {
      if (!std::equal(tail, tail + n, context.data() + s)) continue;
      const int from = s + n, to = std::min(len, from + k);
      tokens.assign(context.begin() + from, context.begin() + to);
      return;
    }
  }
}

}  // namespace billion
