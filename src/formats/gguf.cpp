// GGUF parsing. The layout (ggml docs/gguf.md): magic "GGUF", u32 version, u64 tensor count,
// u64 metadata count, metadata pairs, tensor infos, padding to `general.alignment`, tensor data.
#include "formats/gguf.h"

#include <fmt/format.h>

#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/utf8.h"

namespace billion {
namespace {

constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

// Bounds-checked little-endian reader over the file's bytes.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  size_t position() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }

  template <typename T>
  T read(const char* what) {
    if (remaining() < sizeof(T))
      fail(name_, "truncated at byte {} while reading {} (file has {} bytes)", pos_, what, bytes_.size());
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  std::string read_string(const char* what, bool require_utf8) {
    auto length = read<uint64_t>(what);
    if (length > remaining())
      fail(name_, "{} at byte {} claims {} bytes but only {} remain", what, pos_ - 8, length, remaining());
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<size_t>(length));
    if (require_utf8 && !is_valid_utf8(s)) fail(name_, "{} {} is not valid UTF-8", what, printable(s));
    pos_ += length;
    return s;
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& name_;
  size_t pos_ = 0;
};

// The smallest encoding of one value of a type, used to reject counts the file cannot hold
// before allocating for them.
size_t minimum_value_bytes(GgufValueType type) {
  switch (type) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::BOOL: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
    case GgufValueType::STRING: return 8;
    case GgufValueType::ARRAY: return 12;
  }
  return 1;
}

bool known_value_type(uint32_t t) { return t <= 12; }

GgufValue read_value(Cursor& cursor, GgufValueType type, const std::string& key, const std::string& name, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::U8: v.u = cursor.read<uint8_t>("u8 value"); v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::I8: v.i = cursor.read<int8_t>("i8 value"); v.u = static_cast<uint64_t>(v.i); break;
    case GgufValueType::U16: v.u = cursor.read<uint16_t>("u16 value"); v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::I16: v.i = cursor.read<int16_t>("i16 value"); v.u = static_cast<uint64_t>(v.i); break;
    case GgufValueType::U32: v.u = cursor.read<uint32_t>("u32 value"); v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::I32: v.i = cursor.read<int32_t>("i32 value"); v.u = static_cast<uint64_t>(v.i); break;
    case GgufValueType::U64: v.u = cursor.read<uint64_t>("u64 value"); v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::I64: v.i = cursor.read<int64_t>("i64 value"); v.u = static_cast<uint64_t>(v.i); break;
    case GgufValueType::F32: v.f = cursor.read<float>("f32 value"); break;
    case GgufValueType::F64: v.f = cursor.read<double>("f64 value"); break;
    case GgufValueType::BOOL: {
      auto b = cursor.read<uint8_t>("bool value");
      if (b > 1) fail(name, "metadata {}: bool value {} is neither 0 nor 1", key, b);
      v.u = b;
      v.i = b;
      break;
    }
    case GgufValueType::STRING:
      // Token texts may legitimately hold invalid UTF-8 (byte tokens), so values are not checked.
      v.str = cursor.read_string("string value", false);
      break;
    case GgufValueType::ARRAY: {
      if (depth >= kMaxArrayDepth) fail(name, "metadata {}: arrays nested deeper than {}", key, kMaxArrayDepth);
      auto element_type = cursor.read<uint32_t>("array element type");
      if (!known_value_type(element_type)) fail(name, "metadata {}: unknown array element type {}", key, element_type);
      v.array_type = static_cast<GgufValueType>(element_type);
      auto count = cursor.read<uint64_t>("array length");
      if (count > cursor.remaining() / minimum_value_bytes(v.array_type))
        fail(name, "metadata {}: array of {} elements cannot fit in the {} bytes left", key, count, cursor.remaining());
      v.array.reserve(static_cast<size_t>(count));
      for (uint64_t k = 0; k < count; ++k) v.array.push_back(read_value(cursor, v.array_type, key, name, depth + 1));
      break;
    }
  }
  return v;
}

bool checked_multiply(uint64_t a, uint64_t b, uint64_t& out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
  static constexpr const char* kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                           "bool", "string", "array", "u64", "i64", "f64"};
  auto t = static_cast<uint32_t>(type);
  return t < 13 ? kNames[t] : "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::U16: case GgufValueType::I16:
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::U64: case GgufValueType::I64:
      return true;
    default:
      return false;
  }
}

std::string GgufValue::to_string(size_t max_items) const {
  switch (type) {
    case GgufValueType::U8: case GgufValueType::U16: case GgufValueType::U32: case GgufValueType::U64:
      return std::to_string(u);
    case GgufValueType::I8: case GgufValueType::I16: case GgufValueType::I32: case GgufValueType::I64:
      return std::to_string(i);
    case GgufValueType::F32: case GgufValueType::F64: return fmt::format("{}", f);
    case GgufValueType::BOOL: return u ? "true" : "false";
    case GgufValueType::STRING: return printable(str, 60);
    case GgufValueType::ARRAY: {
      std::string out = fmt::format("[{} x {}: ", array.size(), gguf_value_type_name(array_type));
      for (size_t k = 0; k < array.size() && k < max_items; ++k) out += (k ? ", " : "") + array[k].to_string(max_items);
      if (array.size() > max_items) out += ", ...";
      return out + "]";
    }
  }
  return "?";
}

GgufFile::GgufFile(const std::string& path) : path_(path), file_(path) {
  bytes_ = file_.bytes();
  parse();
}

std::unique_ptr<GgufFile> GgufFile::from_memory(std::span<const uint8_t> bytes, const std::string& name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = name;
  f->bytes_ = bytes;
  f->parse();
  return f;
}

void GgufFile::parse() {
  const std::string& name = path_;
  Cursor cursor(bytes_, name);
  if (bytes_.size() < 4 || std::memcmp(bytes_.data(), "GGUF", 4) != 0) fail(name, "not a GGUF file (bad magic)");
  cursor.read<uint32_t>("magic");
  version_ = cursor.read<uint32_t>("version");
  if (version_ == 1) fail(name, "GGUF version 1 is obsolete and not supported (re-convert the model)");
  if (version_ != 2 && version_ != 3) {
    if (version_ == 0x02000000 || version_ == 0x03000000) fail(name, "big-endian GGUF files are not supported");
    fail(name, "unsupported GGUF version {}", version_);
  }
  auto tensor_count = cursor.read<uint64_t>("tensor count");
  auto kv_count = cursor.read<uint64_t>("metadata count");
  // Each metadata pair needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info 8+4+8+4+8.
  if (kv_count > cursor.remaining() / 13) fail(name, "metadata count {} cannot fit in a {}-byte file", kv_count, bytes_.size());
  if (tensor_count > cursor.remaining() / 32) fail(name, "tensor count {} cannot fit in a {}-byte file", tensor_count, bytes_.size());

  for (uint64_t k = 0; k < kv_count; ++k) {
    std::string key = cursor.read_string("metadata key", true);
    if (key.empty()) fail(name, "metadata pair {} has an empty key", k);
    auto type = cursor.read<uint32_t>("metadata value type");
    if (!known_value_type(type)) fail(name, "metadata {}: unknown value type {}", key, type);
    GgufValue value = read_value(cursor, static_cast<GgufValueType>(type), key, name, 0);
    if (!metadata_.emplace(key, std::move(value)).second) fail(name, "duplicate metadata key {}", key);
  }

  if (auto it = metadata_.find("general.alignment"); it != metadata_.end()) {
    if (!it->second.is_integer()) fail(name, "general.alignment must be an integer");
    alignment_ = it->second.u;
    if (alignment_ == 0 || alignment_ % 8 != 0 || alignment_ > (1u << 20))
      fail(name, "general.alignment {} is not a positive multiple of 8 (at most 1 MiB)", alignment_);
  }

  tensors_.reserve(static_cast<size_t>(tensor_count));
  for (uint64_t k = 0; k < tensor_count; ++k) {
    GgufTensorInfo t;
    t.name = cursor.read_string("tensor name", true);
    if (t.name.empty()) fail(name, "tensor {} has an empty name", k);
    auto n_dims = cursor.read<uint32_t>("tensor dimension count");
    if (n_dims == 0 || n_dims > kMaxDims) fail(name, "tensor {} has {} dimensions (1 to {} allowed)", t.name, n_dims, kMaxDims);
    t.n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      auto dim = cursor.read<uint64_t>("tensor dimension");
      if (dim > (uint64_t(1) << 40)) fail(name, "tensor {} dimension {} is absurdly large ({})", t.name, d, dim);
      t.dims.push_back(dim);
      if (!checked_multiply(t.n_elements, dim, t.n_elements)) fail(name, "tensor {} element count overflows", t.name);
    }
    auto type_id = cursor.read<uint32_t>("tensor type");
    auto traits = ggml_type_traits(type_id);
    if (!traits) fail(name, "tensor {} has unknown ggml type {}", t.name, type_id);
    t.type = traits->type;
    if (t.dims[0] % traits->block_elements != 0)
      fail(name, "tensor {}: row length {} is not a multiple of the {} block size {}", t.name, t.dims[0], traits->name, traits->block_elements);
    uint64_t blocks = t.n_elements / traits->block_elements;
    if (!checked_multiply(blocks, traits->block_bytes, t.n_bytes)) fail(name, "tensor {} byte size overflows", t.name);
    t.offset = cursor.read<uint64_t>("tensor offset");
    if (t.offset % alignment_ != 0) fail(name, "tensor {} offset {} is not a multiple of the alignment {}", t.name, t.offset, alignment_);
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) fail(name, "duplicate tensor name {}", t.name);
    tensors_.push_back(std::move(t));
  }

  uint64_t header_end = cursor.position();
  data_offset_ = header_end + (alignment_ - header_end % alignment_) % alignment_;
  if (tensor_count > 0 && data_offset_ > bytes_.size())
    fail(name, "truncated: tensor data would start at byte {} but the file has {} bytes", data_offset_, bytes_.size());
  uint64_t data_size = bytes_.size() > data_offset_ ? bytes_.size() - data_offset_ : 0;
  for (auto& t : tensors_) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset)
      fail(name, "tensor {} ({} bytes at data offset {}) runs past the end of the file (data section has {} bytes)",
           t.name, t.n_bytes, t.offset, data_size);
    t.data = bytes_.data() + data_offset_ + t.offset;
  }
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& tensor_name) const {
  auto it = tensor_index_.find(tensor_name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

void GgufFile::fail_key(const std::string& key, const std::string& problem) const {
  fail(path_, "metadata {}: {}", key, problem);
}

std::optional<std::string> GgufFile::string_or(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::STRING) fail_key(key, fmt::format("expected a string, found {}", gguf_value_type_name(v->type)));
  return v->str;
}

std::optional<uint64_t> GgufFile::uint_or(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_integer()) fail_key(key, fmt::format("expected an integer, found {}", gguf_value_type_name(v->type)));
  if (v->i < 0 && v->type != GgufValueType::U64) fail_key(key, fmt::format("expected a non-negative integer, found {}", v->i));
  return v->u;
}

std::optional<double> GgufFile::float_or(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_float()) return v->f;
  if (v->is_integer()) return static_cast<double>(v->i);
  fail_key(key, fmt::format("expected a number, found {}", gguf_value_type_name(v->type)));
}

std::optional<bool> GgufFile::bool_or(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::BOOL) fail_key(key, fmt::format("expected a bool, found {}", gguf_value_type_name(v->type)));
  return v->u != 0;
}

std::string GgufFile::get_string(const std::string& key) const {
  auto v = string_or(key);
  if (!v) fail_key(key, "missing");
  return *v;
}

uint64_t GgufFile::get_uint(const std::string& key) const {
  auto v = uint_or(key);
  if (!v) fail_key(key, "missing");
  return *v;
}

double GgufFile::get_float(const std::string& key) const {
  auto v = float_or(key);
  if (!v) fail_key(key, "missing");
  return *v;
}

bool GgufFile::get_bool(const std::string& key) const {
  auto v = bool_or(key);
  if (!v) fail_key(key, "missing");
  return *v;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(key, "missing");
  if (v->type != GgufValueType::ARRAY || v->array_type != GgufValueType::STRING) fail_key(key, "expected an array of strings");
  std::vector<std::string> out;
  out.reserve(v->array.size());
  for (const auto& e : v->array) out.push_back(e.str);
  return out;
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(key, "missing");
  if (v->type != GgufValueType::ARRAY) fail_key(key, "expected an array");
  std::vector<double> out;
  out.reserve(v->array.size());
  for (const auto& e : v->array) {
    if (e.is_float()) out.push_back(e.f);
    else if (e.is_integer()) out.push_back(static_cast<double>(e.i));
    else fail_key(key, "expected an array of numbers");
  }
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(key, "missing");
  if (v->type != GgufValueType::ARRAY) fail_key(key, "expected an array");
  std::vector<int64_t> out;
  out.reserve(v->array.size());
  for (const auto& e : v->array) {
    if (!e.is_integer()) fail_key(key, "expected an array of integers");
    out.push_back(e.i);
  }
  return out;
}

}  // namespace billion
