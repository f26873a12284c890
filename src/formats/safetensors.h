// safetensors reader: single files and sharded checkpoints (model.safetensors.index.json).
// Layout: u64 header length N, N bytes of JSON, then the byte buffer; tensors are read in place
// from the memory map. Only F32, F16 and BF16 are accepted for weights; anything else is
// refused with the tensor's name and dtype.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/mapped_file.h"

namespace billion {

enum class SafetensorsDtype { F32, F16, BF16 };
const char* safetensors_dtype_name(SafetensorsDtype dtype);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype;
  std::vector<uint64_t> shape;  // PyTorch order: [out, in] for a Linear weight
  uint64_t n_elements;
  std::span<const uint8_t> bytes;  // inside the mapping
  std::string file;                // the shard it lives in
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  static std::unique_ptr<SafetensorsFile> from_memory(std::span<const uint8_t> bytes, const std::string& name);

  const std::string& path() const { return path_; }
  size_t file_size() const { return bytes_.size(); }
  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  void parse();

  std::string path_;
  MappedFile file_;
  std::span<const uint8_t> bytes_;
  std::map<std::string, SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint: `model.safetensors`, or the shards named by
// `model.safetensors.index.json` (every shard must exist; every tensor must be where the index says).
class SafetensorsCheckpoint {
 public:
  // `path` is a folder, a .safetensors file or an index .json file.
  explicit SafetensorsCheckpoint(const std::string& path);
  const SafetensorsTensor* find(const std::string& name) const;
  const std::map<std::string, const SafetensorsTensor*>& tensors() const { return all_; }
  uint64_t total_bytes() const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsTensor*> all_;
};

}  // namespace billion
