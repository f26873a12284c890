// GGUF v2/v3 reader: metadata of every value type (nested arrays too), tensor infos, alignment.
// Tensor data stays in the memory map; every size, count and offset is checked against the file
// before use, so a hostile file gives an Error naming the file, never an out-of-bounds read.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "formats/ggml_types.h"

namespace billion {

enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8,
  ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_value_type_name(GgufValueType type);

struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  // Scalars are widened: integers to int64/uint64, floats to double.
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string str;
  GgufValueType array_type = GgufValueType::U8;  // when type == ARRAY
  std::vector<GgufValue> array;

  bool is_integer() const;
  bool is_float() const { return type == GgufValueType::F32 || type == GgufValueType::F64; }
  // A human-readable rendering; long arrays are abbreviated.
  std::string to_string(size_t max_items = 8) const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // dims[0] varies fastest (ggml ne[0]); PyTorch shape reversed
  GgmlType type;
  uint64_t offset;  // relative to the data section
  uint64_t n_elements;
  uint64_t n_bytes;
  const uint8_t* data;  // inside the mapping
};

class GgufFile {
 public:
  // Opens and validates a file; throws billion::Error naming the path and the problem.
  explicit GgufFile(const std::string& path);
  // Parses bytes already in memory (tests, fuzzing); `name` is used in error messages.
  static std::unique_ptr<GgufFile> from_memory(std::span<const uint8_t> bytes, const std::string& name);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  size_t file_size() const { return bytes_.size(); }
  // True when the tensor data lies in a read-only mapping of the file (not from_memory): pages
  // of it can be given back to the kernel and are read from the file again when touched.
  bool file_backed() const { return file_.data() != nullptr; }

  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;

  const GgufValue* find(const std::string& key) const;
  // Typed getters: throw an Error naming the file and key on absence or wrong type.
  std::string get_string(const std::string& key) const;
  uint64_t get_uint(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  // Optional variants return nullopt when absent (still an Error on a wrong type).
  std::optional<std::string> string_or(const std::string& key) const;
  std::optional<uint64_t> uint_or(const std::string& key) const;
  std::optional<double> float_or(const std::string& key) const;
  std::optional<bool> bool_or(const std::string& key) const;

 private:
  GgufFile() = default;
  void parse();
  [[noreturn]] void fail_key(const std::string& key, const std::string& problem) const;

  std::string path_;
  MappedFile file_;
  std::span<const uint8_t> bytes_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace billion
