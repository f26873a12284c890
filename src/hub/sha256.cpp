// SHA-256 over OpenSSL's EVP interface (see sha256.h).
#include "hub/sha256.h"

#include <openssl/evp.h>

#include <fstream>
#include <vector>

#include "core/error.h"

namespace billion::hub {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_) throw Error("sha256: cannot allocate an OpenSSL digest context");
  reset();
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::reset() {
  if (EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) throw Error("sha256: EVP_DigestInit_ex failed");
}

void Sha256::update(const void* data, size_t size) {
  if (size && EVP_DigestUpdate(ctx_, data, size) != 1) throw Error("sha256: EVP_DigestUpdate failed");
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_, digest, &len) != 1) throw Error("sha256: EVP_DigestFinal_ex failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

void sha256_update_from_file(Sha256& hash, const std::filesystem::path& path, uint64_t length) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot read the partial download");
  std::vector<char> buf(1 << 20);
  while (length > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(length, buf.size()));
    in.read(buf.data(), static_cast<std::streamsize>(want));
    auto got = static_cast<size_t>(in.gcount());
    if (got == 0) throw Error(path.string() + ": partial download shorter than expected");
    hash.update(buf.data(), got);
    length -= got;
  }
}

}  // namespace billion::hub
