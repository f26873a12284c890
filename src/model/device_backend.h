// An accelerator behind the decoder (the CUDA backend in src/gpu is the one we have). Decoder::
// forward still checks its input and splits it into micro-batches; each micro-batch then goes to
// the backend instead of the CPU kernels. The backend holds its own copy of the weights and the
// KV cache positions: a KVCache made by a decoder with a backend keeps its positions in a
// KVDeviceStorage and none on the host, so its size()/truncate()/clear() work as always.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace billion {

class KVCache;
enum class KVType;

// Which logits to compute: the output projection is the most expensive matmul of a small
// model, so prefill computes it only where the caller needs it.
enum class LogitsFor { Last, All, None };

// Keys and values of one cache in accelerator memory.
class KVDeviceStorage {
 public:
  virtual ~KVDeviceStorage() = default;
  // Copies positions [0, n) of `from` (a storage of the same backend and shape).
  virtual void copy_prefix(const KVDeviceStorage& from, int n) = 0;
  virtual std::unique_ptr<KVDeviceStorage> clone() const = 0;
  virtual uint64_t bytes() const = 0;
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  virtual std::string device_name() const = 0;
  virtual std::unique_ptr<KVDeviceStorage> make_kv_storage(int capacity, KVType type) = 0;
  // One micro-batch, as Decoder::forward_batch: tokens at positions cache.size()...; logits
  // [n_out, vocab] written to host memory; returns when the work is done (timings are honest).
  virtual void forward_batch(std::span<const int32_t> tokens, KVCache& cache, float* logits, LogitsFor which) = 0;
  // Device memory this backend has allocated at its peak (weights, caches, scratch).
  virtual uint64_t peak_memory_bytes() const = 0;
};

}  // namespace billion
