// A read-only memory-mapped file. Model weights are used straight from the mapping (zero copy),
// so the kernel pages them in on demand and shares them between processes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace billion {

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) file into a string; errors name the file.
std::string read_text_file(const std::string& path);

}  // namespace billion
