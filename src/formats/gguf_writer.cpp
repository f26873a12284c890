#include "formats/gguf_writer.h"

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace billion {
namespace {

template <typename T>
void put(std::vector<uint8_t>& out, T value) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &value, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

void put_value(std::vector<uint8_t>& out, const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::U8: put<uint8_t>(out, static_cast<uint8_t>(v.u)); break;
    case GgufValueType::I8: put<int8_t>(out, static_cast<int8_t>(v.i)); break;
    case GgufValueType::U16: put<uint16_t>(out, static_cast<uint16_t>(v.u)); break;
    case GgufValueType::I16: put<int16_t>(out, static_cast<int16_t>(v.i)); break;
    case GgufValueType::U32: put<uint32_t>(out, static_cast<uint32_t>(v.u)); break;
    case GgufValueType::I32: put<int32_t>(out, static_cast<int32_t>(v.i)); break;
    case GgufValueType::U64: put<uint64_t>(out, v.u); break;
    case GgufValueType::I64: put<int64_t>(out, v.i); break;
    case GgufValueType::F32: put<float>(out, static_cast<float>(v.f)); break;
    case GgufValueType::F64: put<double>(out, v.f); break;
    case GgufValueType::BOOL: put<uint8_t>(out, v.u ? 1 : 0); break;
    case GgufValueType::STRING: put_string(out, v.str); break;
    case GgufValueType::ARRAY:
      put<uint32_t>(out, static_cast<uint32_t>(v.array_type));
      put<uint64_t>(out, v.array.size());
      for (const auto& e : v.array) put_value(out, e);
      break;
  }
}

}  // namespace

void GgufWriter::set(const std::string& key, const GgufValue& value) {
  for (auto& [k, v] : metadata_)
    if (k == key) {
      v = value;
      return;
    }
  metadata_.emplace_back(key, value);
}

void GgufWriter::set_string(const std::string& key, const std::string& value) {
  GgufValue v;
  v.type = GgufValueType::STRING;
  v.str = value;
  set(key, v);
}

void GgufWriter::set_u32(const std::string& key, uint32_t value) {
  GgufValue v;
  v.type = GgufValueType::U32;
  v.u = value;
  v.i = value;
  set(key, v);
}

void GgufWriter::set_f32(const std::string& key, float value) {
  GgufValue v;
  v.type = GgufValueType::F32;
  v.f = value;
  set(key, v);
}

void GgufWriter::set_bool(const std::string& key, bool value) {
  GgufValue v;
  v.type = GgufValueType::BOOL;
  v.u = value;
  set(key, v);
}

void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& values) {
  GgufValue v;
  v.type = GgufValueType::ARRAY;
  v.array_type = GgufValueType::STRING;
  for (const auto& s : values) {
    GgufValue e;
    e.type = GgufValueType::STRING;
    e.str = s;
    v.array.push_back(std::move(e));
  }
  set(key, v);
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, const std::vector<uint64_t>& dims, std::vector<uint8_t> bytes) {
  uint64_t n = 1;
  for (auto d : dims) n *= d;
  auto traits = ggml_type_traits(static_cast<uint32_t>(type));
  if (!traits || dims.empty() || dims[0] % traits->block_elements != 0) fail(name, "tensor shape does not fit type {}", ggml_type_name(type));
  if (bytes.size() != n / traits->block_elements * traits->block_bytes)
    fail(name, "tensor has {} bytes, expected {}", bytes.size(), n / traits->block_elements * traits->block_bytes);
  tensors_.push_back({name, type, dims, std::move(bytes)});
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  std::vector<uint8_t> out;
  out.insert(out.end(), {'G', 'G', 'U', 'F'});
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  bool has_alignment = false;
  for (const auto& [k, v] : metadata_) has_alignment |= k == "general.alignment";
  put<uint64_t>(out, metadata_.size() + (has_alignment || alignment_ == 32 ? 0 : 1));
  for (const auto& [k, v] : metadata_) {
    put_string(out, k);
    put<uint32_t>(out, static_cast<uint32_t>(v.type));
    put_value(out, v);
  }
  if (!has_alignment && alignment_ != 32) {
    put_string(out, "general.alignment");
    put<uint32_t>(out, static_cast<uint32_t>(GgufValueType::U32));
    put<uint32_t>(out, static_cast<uint32_t>(alignment_));
  }
  auto padded = [&](uint64_t x) { return x + (alignment_ - x % alignment_) % alignment_; };
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (auto d : t.dims) put<uint64_t>(out, d);
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, offset);
    offset = padded(offset + t.bytes.size());
  }
  out.resize(padded(out.size()), 0);
  for (const auto& t : tensors_) {
    out.insert(out.end(), t.bytes.begin(), t.bytes.end());
    out.resize(out.size() + (padded(t.bytes.size()) - t.bytes.size()), 0);
  }
  return out;
}

void GgufWriter::write(const std::string& path) const {
  auto bytes = to_bytes();
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, "cannot create: {}", std::strerror(errno));
  size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  bool ok = written == bytes.size() && std::fflush(f) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    fail(path, "write failed (disk full?) after {} of {} bytes", written, bytes.size());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail(path, "cannot rename the finished file into place: {}", ec.message());
  }
}

}  // namespace billion
