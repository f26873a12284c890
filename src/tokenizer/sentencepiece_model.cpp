// Protobuf wire-format decoding of SentencePiece's ModelProto (see sentencepiece_model.h).
// Field numbers follow sentencepiece_model.proto:
//   ModelProto      1 pieces (repeated message), 2 trainer_spec, 3 normalizer_spec
//   SentencePiece   1 piece (string), 2 score (float), 3 type (enum)
//   TrainerSpec     3 model_type, 24 treat_whitespace_as_suffix, 35 byte_fallback,
//                   40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id
//   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
//                   4 remove_extra_whitespaces, 5 escape_whitespaces
// Unknown fields are skipped, as protobuf requires, so newer files still load.
#include "tokenizer/sentencepiece_model.h"

#include <cstring>

#include "core/error.h"
#include "core/mapped_file.h"

namespace billion {
namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLength = 2, kStartGroup = 3, kEndGroup = 4, kFixed32 = 5 };

struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t value = 0;              // varint / fixed32 / fixed64 payload
  std::span<const uint8_t> bytes;  // length-delimited payload
  size_t offset = 0;               // where the field's key starts (for messages)
};

// Reads one message's fields in order. Offsets in errors are from the start of the file, so a
// report points at the exact byte even inside nested messages.
class WireReader {
 public:
  WireReader(std::span<const uint8_t> bytes, size_t base, const std::string& name)
      : data_(bytes), base_(base), name_(name) {}

  bool done() const { return pos_ >= data_.size(); }

  Field next() {
    Field f;
    f.offset = base_ + pos_;
    const uint64_t key = varint();
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire = static_cast<uint32_t>(key & 7);
    if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff) bad(f.offset, "invalid field number {}", key >> 3);
    switch (f.wire) {
      case kVarint:
        f.value = varint();
        break;
      case kFixed64:
        f.value = fixed(8);
        break;
      case kFixed32:
        f.value = fixed(4);
        break;
      case kLength: {
        const uint64_t n = varint();
        if (n > data_.size() - pos_) {
          bad(base_ + pos_, "field {} says {} bytes but only {} remain (truncated file?)", f.number, n, data_.size() - pos_);
        }
        f.bytes = data_.subspan(pos_, static_cast<size_t>(n));
        pos_ += static_cast<size_t>(n);
        break;
      }
      default:  // groups (3, 4) are not used by ModelProto; 6 and 7 do not exist
        bad(f.offset, "field {} has unsupported wire type {}", f.number, f.wire);
    }
    return f;
  }

  // Where a length-delimited field's payload starts, for nested readers.
  size_t payload_offset(const Field& f) const { return base_ + static_cast<size_t>(f.bytes.data() - data_.data()); }

  template <typename... Args>
  [[noreturn]] void bad(size_t offset, fmt::format_string<Args...> format, Args&&... args) const {
    fail(name_, "malformed SentencePiece model at byte {}: {}", offset, fmt::format(format, std::forward<Args>(args)...));
  }

 private:
  uint64_t varint() {
    const size_t start = base_ + pos_;
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) bad(start, "truncated varint");
      const uint8_t b = data_[pos_++];
      // The tenth byte may only carry the top bit of a 64-bit value.
      if (shift == 63 && b > 1) bad(start, "varint longer than 64 bits");
      result |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
    }
    bad(start, "varint longer than 10 bytes");
  }

  uint64_t fixed(size_t n) {
    if (data_.size() - pos_ < n) bad(base_ + pos_, "truncated {}-byte value", n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(data_[pos_ + k]) << (8 * k);
    pos_ += n;
    return v;
  }

  std::span<const uint8_t> data_;
  size_t base_;
  const std::string& name_;
  size_t pos_ = 0;
};

void expect_wire(const WireReader& r, const Field& f, uint32_t wire, const char* what) {
  if (f.wire != wire) r.bad(f.offset, "{} (field {}) has wire type {}, expected {}", what, f.number, f.wire, wire);
}

float as_float(uint64_t bits) {
  const auto b = static_cast<uint32_t>(bits);
  float out;
  std::memcpy(&out, &b, sizeof out);
  return out;
}

// int32 fields are sign-extended to 64 bits on the wire (-1 is ten bytes); anything that does
// not fit an int32 is a corrupt file rather than something to truncate silently.
int32_t as_int32(const WireReader& r, const Field& f, const char* what) {
  const auto v = static_cast<int64_t>(f.value);
  if (v < INT32_MIN || v > INT32_MAX) r.bad(f.offset, "{} = {} does not fit in int32", what, v);
  return static_cast<int32_t>(v);
}

SentencePieceModel::Piece parse_piece(const WireReader& outer, const Field& field, const std::string& name) {
  SentencePieceModel::Piece piece;
  WireReader r(field.bytes, outer.payload_offset(field), name);
  while (!r.done()) {
    const Field f = r.next();
    switch (f.number) {
      case 1:
        expect_wire(r, f, kLength, "piece");
        piece.piece.assign(reinterpret_cast<const char*>(f.bytes.data()), f.bytes.size());
        break;
      case 2:
        expect_wire(r, f, kFixed32, "score");
        piece.score = as_float(f.value);
        break;
      case 3:
        expect_wire(r, f, kVarint, "type");
        piece.type = as_int32(r, f, "type");
        break;
      default:
        break;
    }
  }
  return piece;
}

void parse_trainer(const WireReader& outer, const Field& field, const std::string& name, SentencePieceModel& m) {
  WireReader r(field.bytes, outer.payload_offset(field), name);
  while (!r.done()) {
    const Field f = r.next();
    auto as_bool = [&](const char* what) {
      expect_wire(r, f, kVarint, what);
      return f.value != 0;
    };
    auto as_int = [&](const char* what) {
      expect_wire(r, f, kVarint, what);
      return as_int32(r, f, what);
    };
    switch (f.number) {
      case 3: m.model_type = as_int("model_type"); break;
      case 24: m.treat_whitespace_as_suffix = as_bool("treat_whitespace_as_suffix"); break;
      case 35: m.byte_fallback = as_bool("byte_fallback"); break;
      case 40: m.unk_id = as_int("unk_id"); break;
      case 41: m.bos_id = as_int("bos_id"); break;
      case 42: m.eos_id = as_int("eos_id"); break;
      case 43: m.pad_id = as_int("pad_id"); break;
      default: break;
    }
  }
}

void parse_normalizer(const WireReader& outer, const Field& field, const std::string& name, SentencePieceModel& m) {
  WireReader r(field.bytes, outer.payload_offset(field), name);
  while (!r.done()) {
    const Field f = r.next();
    auto as_bool = [&](const char* what) {
      expect_wire(r, f, kVarint, what);
      return f.value != 0;
    };
    switch (f.number) {
      case 1:
        expect_wire(r, f, kLength, "normalizer name");
        m.normalizer_name.assign(reinterpret_cast<const char*>(f.bytes.data()), f.bytes.size());
        break;
      case 2:
        expect_wire(r, f, kLength, "precompiled_charsmap");
        m.has_precompiled_charsmap = !f.bytes.empty();
        break;
      case 3: m.add_dummy_prefix = as_bool("add_dummy_prefix"); break;
      case 4: m.remove_extra_whitespaces = as_bool("remove_extra_whitespaces"); break;
      case 5: m.escape_whitespaces = as_bool("escape_whitespaces"); break;
      default: break;
    }
  }
}

}  // namespace

SentencePieceModel parse_sentencepiece_model(std::span<const uint8_t> bytes, const std::string& name) {
  SentencePieceModel m;
  WireReader r(bytes, 0, name);
  while (!r.done()) {
    const Field f = r.next();
    switch (f.number) {
      case 1:
        expect_wire(r, f, kLength, "pieces");
        m.pieces.push_back(parse_piece(r, f, name));
        break;
      case 2:
        expect_wire(r, f, kLength, "trainer_spec");
        parse_trainer(r, f, name, m);
        break;
      case 3:
        expect_wire(r, f, kLength, "normalizer_spec");
        parse_normalizer(r, f, name, m);
        break;
      default:
        break;
    }
  }
  return m;
}

SentencePieceModel read_sentencepiece_model(const std::string& path) {
  MappedFile file(path);
  return parse_sentencepiece_model(file.bytes(), path);
}

}  // namespace billion
