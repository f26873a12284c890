// gzip decoding with zlib's inflate (windowBits 15+16 = gzip wrapper only, so a raw zlib or
// plain file is rejected with a clear message instead of being misread).
#include "core/gzip.h"

#include <zlib.h>

#include "core/error.h"
#include "core/mapped_file.h"

namespace billion {

std::string gunzip(std::string_view compressed, const std::string& name) {
  if (compressed.size() < 18 || static_cast<uint8_t>(compressed[0]) != 0x1f ||
      static_cast<uint8_t>(compressed[1]) != 0x8b)
    fail(name, "not gzip data (no 1f 8b header)");
  std::string out;
  size_t pos = 0;
  char buffer[1 << 16];
  while (pos < compressed.size()) {
    z_stream stream{};
    if (inflateInit2(&stream, 15 + 16) != Z_OK) fail(name, "zlib inflateInit2 failed");
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data() + pos));
    // zlib counts in uInt; inputs above 4 GiB are not expected here, so refuse them.
    if (compressed.size() - pos > 0xffffffffu) {
      inflateEnd(&stream);
      fail(name, "gzip data larger than 4 GiB");
    }
    stream.avail_in = static_cast<uInt>(compressed.size() - pos);
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      stream.next_out = reinterpret_cast<Bytef*>(buffer);
      stream.avail_out = sizeof buffer;
      rc = inflate(&stream, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END) {
        std::string why = stream.msg ? stream.msg : (rc == Z_BUF_ERROR ? "truncated data" : "error");
        inflateEnd(&stream);
        fail(name, "gzip data is corrupt at compressed byte {}: {}", pos + stream.total_in, why);
      }
      out.append(buffer, sizeof buffer - stream.avail_out);
    }
    pos += stream.total_in;
    inflateEnd(&stream);
    // Trailing zero padding (some tools pad to a block size) ends the data.
    if (pos < compressed.size() && compressed[pos] == 0) break;
  }
  return out;
}

std::string read_gzip_file(const std::string& path) {
  MappedFile file(path);
  return gunzip(std::string_view(reinterpret_cast<const char*>(file.data()), file.size()), path);
}

}  // namespace billion
