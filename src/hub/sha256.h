// Incremental SHA-256 (OpenSSL libcrypto) for verifying LFS blobs against their etag while the
// bytes stream in, so a multi-GB file is not read a second time after the download.
#pragma once
#include <cstddef>
#include <filesystem>
#include <string>

struct evp_md_ctx_st;

namespace billion::hub {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void reset();
  void update(const void* data, size_t size);
  std::string hex_digest();  // lower-case hex; the object must be reset() before reuse

 private:
  evp_md_ctx_st* ctx_;
};

// Feeds the first `length` bytes of a file (a partial download being resumed) into `hash`.
void sha256_update_from_file(Sha256& hash, const std::filesystem::path& path, uint64_t length);

}  // namespace billion::hub
