#include "model/kv_cache.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace billion {

KVCache::KVCache(int n_layers, int capacity, int kv_dim, KVType type)
    : type_(type), n_layers_(n_layers), capacity_(capacity), kv_dim_(kv_dim) {
  keys_.resize(int64_t(n_layers) * capacity * kv_dim * element_bytes());
  values_.resize(keys_.size());
}

void KVCache::truncate(int n) {
  if (n < 0 || n > size_) throw Error("KV cache: cannot truncate to " + std::to_string(n) + " of " + std::to_string(size_) + " positions");
  size_ = n;
}

void KVCache::copy_prefix_from(const KVCache& other, int n) {
  if (other.n_layers_ != n_layers_ || other.kv_dim_ != kv_dim_ || other.type_ != type_ || n > other.size_ || n > capacity_)
    throw Error("KV cache: cannot copy a prefix between caches of different shapes");
  for (int layer = 0; layer < n_layers_; ++layer) {
    std::copy_n(other.key(layer, 0), int64_t(n) * kv_dim_ * element_bytes(), key(layer, 0));
    std::copy_n(other.value(layer, 0), int64_t(n) * kv_dim_ * element_bytes(), value(layer, 0));
  }
  size_ = n;
}

}  // namespace billion
