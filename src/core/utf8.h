// UTF-8 validation and decoding helpers shared by file readers and tokenizers.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace billion {

// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// Length in bytes of the UTF-8 sequence starting with byte `lead` (1 for an invalid lead byte).
inline int utf8_sequence_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xe0) == 0xc0) return 2;
  if ((lead & 0xf0) == 0xe0) return 3;
  if ((lead & 0xf8) == 0xf0) return 4;
  return 1;
}

// Appends the UTF-8 encoding of a code point.
void append_utf8(std::string& out, uint32_t code_point);

// Decodes one code point at s[pos]; advances pos. Invalid bytes decode as U+FFFD, one byte each.
uint32_t decode_utf8(std::string_view s, size_t& pos);

// Quotes a string for error messages: printable ASCII as is, the rest as \xNN.
std::string printable(std::string_view s, size_t max_bytes = 80);

}  // namespace billion
