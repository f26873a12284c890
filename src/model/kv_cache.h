// The key/value cache of one sequence: keys and values per layer and position, F16 by default
// (half the memory, the precision llama.cpp uses) or F32 (bit-faithful comparison with
// transformers' F32 forward pass). Positions [0, size()) are filled. Truncation (speculative
// rollback, reusing a shared prompt prefix such as MMLU's few-shot header or a chat history)
// only moves size back: entries past it are overwritten by the next evaluation.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/device_backend.h"

namespace billion {

enum class KVType { F16, F32 };

class KVCache {
 public:
  KVCache() = default;
  KVCache(int n_layers, int capacity, int kv_dim, KVType type = KVType::F16);
  // A cache whose positions live in accelerator memory (Decoder::make_cache with a backend):
  // nothing is allocated on the host, key()/value() must not be used.
  KVCache(int n_layers, int capacity, int kv_dim, KVType type, std::unique_ptr<KVDeviceStorage> device);
  KVCache(const KVCache& other);
  KVCache& operator=(const KVCache& other);
  KVCache(KVCache&&) noexcept = default;
  KVCache& operator=(KVCache&&) noexcept = default;

  KVType type() const { return type_; }
  int capacity() const { return capacity_; }
  int size() const { return size_; }
  int kv_dim() const { return kv_dim_; }
  void truncate(int n);  // keep positions [0, n); n <= size()
  void clear() { size_ = 0; }
  // Copies positions [0, n) of another cache of the same shape (branching from a shared prefix).
  void copy_prefix_from(const KVCache& other, int n);
  uint64_t bytes() const { return device_ ? device_->bytes() : keys_.size() + values_.size(); }
  KVDeviceStorage* device_storage() const { return device_.get(); }
  void set_size(int n) { size_ = n; }  // the decoder, after writing positions up to n

  // F16 only. By default attention sums as llama.cpp does, which differs in the last bits
  // between a one-token step and a batch (kernels.h, AttentionOrder): our logits are llama.cpp's,
  // but evaluating a sequence token by token and in one prefill can differ, and on a quantized
  // model such a difference can grow to a different greedy token. Batch-invariant: every split
  // of a sequence gives the same bits (one token at a time too), no longer llama.cpp's in steps.
  void set_batch_invariant(bool on) { batch_invariant_ = on; }
  bool batch_invariant() const { return batch_invariant_; }

  // Start of position `pos` in layer `layer`: kv_dim values (n_kv_heads × head_dim) of type().
  uint8_t* key(int layer, int pos) { return keys_.data() + offset(layer, pos); }
  uint8_t* value(int layer, int pos) { return values_.data() + offset(layer, pos); }
  const uint8_t* key(int layer, int pos) const { return keys_.data() + offset(layer, pos); }
  const uint8_t* value(int layer, int pos) const { return values_.data() + offset(layer, pos); }
  int element_bytes() const { return type_ == KVType::F16 ? 2 : 4; }

 private:
  int64_t offset(int layer, int pos) const { return (int64_t(layer) * capacity_ + pos) * kv_dim_ * element_bytes(); }
  KVType type_ = KVType::F16;
  int n_layers_ = 0, capacity_ = 0, kv_dim_ = 0, size_ = 0;
  bool batch_invariant_ = false;
  std::vector<uint8_t> keys_, values_;
  std::unique_ptr<KVDeviceStorage> device_;
};

}  // namespace billion
