// GGUF v3 writer: metadata and tensors in, one file out (written to a temporary name and
// renamed, so a failure never leaves a half-written model). Used by `billion quantize` and tests.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "formats/gguf.h"

namespace billion {

class GgufWriter {
 public:
  explicit GgufWriter(uint64_t alignment = 32) : alignment_(alignment) {}

  void set(const std::string& key, const GgufValue& value);
  void set_string(const std::string& key, const std::string& value);
  void set_u32(const std::string& key, uint32_t value);
  void set_f32(const std::string& key, float value);
  void set_bool(const std::string& key, bool value);
  void set_string_array(const std::string& key, const std::vector<std::string>& values);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& values);
  void set_f32_array(const std::string& key, const std::vector<float>& values);
  // dims in ggml order (dims[0] fastest); bytes must match the type's size for those dims.
  void add_tensor(const std::string& name, GgmlType type, const std::vector<uint64_t>& dims, std::vector<uint8_t> bytes);
  // Streaming: `produce` is called once, during write(), and must return exactly the bytes the
  // type and dims need; only one tensor's data is in memory at a time (multi-GB models).
  using TensorProducer = std::function<std::vector<uint8_t>()>;
  void add_tensor(const std::string& name, GgmlType type, const std::vector<uint64_t>& dims, TensorProducer produce);

  std::vector<uint8_t> to_bytes() const;
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<uint64_t> dims;
    std::vector<uint8_t> bytes;
    uint64_t size = 0;        // bytes of the data (bytes.size() when not streamed)
    TensorProducer produce;   // set for streamed tensors
  };
  std::vector<uint8_t> header_bytes() const;  // everything before the data section, padded
  std::vector<uint8_t> tensor_data(const Tensor& t) const;
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace billion
