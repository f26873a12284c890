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

// An ARRAY value of `type` elements, one per value; fill(element, value) sets the element's field.
template <typename T, typename Fill>
GgufValue array_value(GgufValueType type, const std::vector<T>& values, Fill fill) {
  GgufValue v;
  v.type = GgufValueType::ARRAY;
  v.array_type = type;
  v.array.reserve(values.size());
  for (const T& x : values) {
    GgufValue e;
    e.type = type;
    fill(e, x);
    v.array.push_back(std::move(e));
  }
  return v;
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

void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& values) {
  set(key, array_value(GgufValueType::I32, values, [](GgufValue& e, int32_t x) {
        e.i = x;
        e.u = static_cast<uint64_t>(x);
      }));
}

void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& values) {
  set(key, array_value(GgufValueType::F32, values, [](GgufValue& e, float x) { e.f = x; }));
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
  set(key, array_value(GgufValueType::STRING, values, [](GgufValue& e, const std::string& x) { e.str = x; }));
}

namespace {

uint64_t expected_bytes(const std::string& name, GgmlType type, const std::vector<uint64_t>& dims) {
  uint64_t n = 1;
  for (auto d : dims) n *= d;
  auto traits = ggml_type_traits(static_cast<uint32_t>(type));
  if (!traits || dims.empty() || dims[0] % traits->block_elements != 0) fail(name, "tensor shape does not fit type {}", ggml_type_name(type));
  return n / traits->block_elements * traits->block_bytes;
}

}  // namespace

void GgufWriter::add_tensor(const std::string& name, GgmlType type, const std::vector<uint64_t>& dims, std::vector<uint8_t> bytes) {
  uint64_t want = expected_bytes(name, type, dims);
  if (bytes.size() != want) fail(name, "tensor has {} bytes, expected {}", bytes.size(), want);
  tensors_.push_back({name, type, dims, std::move(bytes), want, {}});
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, const std::vector<uint64_t>& dims, TensorProducer produce) {
  uint64_t want = expected_bytes(name, type, dims);
  tensors_.push_back({name, type, dims, {}, want, std::move(produce)});
}

std::vector<uint8_t> GgufWriter::tensor_data(const Tensor& t) const {
  if (!t.produce) return t.bytes;
  auto bytes = t.produce();
  if (bytes.size() != t.size) fail(t.name, "tensor producer gave {} bytes, expected {}", bytes.size(), t.size);
  return bytes;
}

std::vector<uint8_t> GgufWriter::header_bytes() const {
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
    offset = padded(offset + t.size);
  }
  out.resize(padded(out.size()), 0);
  return out;
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  auto out = header_bytes();
  for (const auto& t : tensors_) {
    auto bytes = tensor_data(t);
    out.insert(out.end(), bytes.begin(), bytes.end());
    out.resize(out.size() + (alignment_ - bytes.size() % alignment_) % alignment_, 0);
  }
  return out;
}

void GgufWriter::write(const std::string& path) const {
  // Header first, then one tensor at a time: memory stays at the largest tensor, not the file.
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, "cannot create: {}", std::strerror(errno));
  uint64_t written = 0, total = 0;
  bool ok = true;
  auto emit = [&](const std::vector<uint8_t>& bytes) {
    total += bytes.size();
    if (ok) {
      size_t w = std::fwrite(bytes.data(), 1, bytes.size(), f);
      written += w;
      ok = w == bytes.size();
    }
  };
  try {
    emit(header_bytes());
    for (const auto& t : tensors_) {
      emit(tensor_data(t));
      emit(std::vector<uint8_t>((alignment_ - t.size % alignment_) % alignment_, 0));
      if (!ok) break;
    }
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  ok = ok && std::fflush(f) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    fail(path, "write failed (disk full?) after {} bytes", written);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail(path, "cannot rename the finished file into place: {}", ec.message());
  }
}

}  // namespace billion
