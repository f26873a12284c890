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

KVCache::KVCache(int n_layers, int capacity, int kv_dim, KVType type, std::unique_ptr<KVDeviceStorage> device)
    : type_(type), n_layers_(n_layers), capacity_(capacity), kv_dim_(kv_dim), device_(std::move(device)) {}

KVCache::KVCache(const KVCache& other)
    : type_(other.type_), n_layers_(other.n_layers_), capacity_(other.capacity_), kv_dim_(other.kv_dim_), size_(other.size_),
      batch_invariant_(other.batch_invariant_), keys_(other.keys_), values_(other.values_),
      device_(other.device_ ? other.device_->clone() : nullptr) {}

KVCache& KVCache::operator=(const KVCache& other) {
  if (this != &other) *this = KVCache(other);
  return *this;
}

void KVCache::truncate(int n) {
  if (n < 0 || n > size_) throw Error("KV cache: cannot truncate to " + std::to_string(n) + " of " + std::to_string(size_) + " positions");
  size_ = n;
}

void KVCache::copy_prefix_from(const KVCache& other, int n) {
  if (other.n_layers_ != n_layers_ || other.kv_dim_ != kv_dim_ || other.type_ != type_ || n > other.size_ || n > capacity_)
    throw Error("KV cache: cannot copy a prefix between caches of different shapes");
  if (bool(device_) != bool(other.device_)) throw Error("KV cache: cannot copy a prefix between a host cache and a device cache");
  if (device_) {
    device_->copy_prefix(*other.device_, n);
    size_ = n;
    return;
  }
  for (int layer = 0; layer < n_layers_; ++layer) {
    std::copy_n(other.key(layer, 0), int64_t(n) * kv_dim_ * element_bytes(), key(layer, 0));
    std::copy_n(other.value(layer, 0), int64_t(n) * kv_dim_ * element_bytes(), value(layer, 0));
  }
  size_ = n;
}

}  // namespace billion
