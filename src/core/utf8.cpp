#include "core/utf8.h"

#include <fmt/format.h>

namespace billion {

bool is_valid_utf8(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    size_t before = pos;
    uint32_t cp = decode_utf8(s, pos);
    if (cp == 0xfffd) {
      // U+FFFD itself is valid when encoded as EF BF BD.
      if (!(pos - before == 3 && static_cast<uint8_t>(s[before]) == 0xef)) return false;
    }
  }
  return true;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

uint32_t decode_utf8(std::string_view s, size_t& pos) {
  const auto b0 = static_cast<uint8_t>(s[pos]);
  int len = utf8_sequence_length(b0);
  if (len == 1) {
    ++pos;
    return b0 < 0x80 ? b0 : 0xfffd;
  }
  if (pos + len > s.size()) {
    ++pos;
    return 0xfffd;
  }
  uint32_t cp = b0 & (0x7f >> len);
  for (int k = 1; k < len; ++k) {
    auto b = static_cast<uint8_t>(s[pos + k]);
    if ((b & 0xc0) != 0x80) {
      ++pos;
      return 0xfffd;
    }
    cp = (cp << 6) | (b & 0x3f);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    ++pos;
    return 0xfffd;
  }
  pos += len;
  return cp;
}

std::string printable(std::string_view s, size_t max_bytes) {
  std::string out = "\"";
  for (size_t k = 0; k < s.size() && k < max_bytes; ++k) {
    auto c = static_cast<uint8_t>(s[k]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') out += static_cast<char>(c);
    else out += fmt::format("\\x{:02x}", c);
  }
  if (s.size() > max_bytes) out += "...";
  return out + "\"";
}

}  // namespace billion
