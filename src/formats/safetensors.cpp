// Parsing and validation follow the format's own rules (huggingface/safetensors README):
// header length capped at 100 MB, JSON object, offsets relative to the buffer, no overlaps,
// the buffer exactly covered, byte size = elements × dtype size.
#include "formats/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/utf8.h"

namespace billion {
namespace fs = std::filesystem;
namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Dtypes safetensors defines but the engine does not take as weights: named in the error.
const std::set<std::string> kKnownOtherDtypes = {"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "F64", "I64",
                                                 "U64", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ",
                                                 "F8_E5M2FNUZ", "F4", "F6_E2M3", "F6_E3M2", "C64"};

}  // namespace

const char* safetensors_dtype_name(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::F32: return "F32";
    case SafetensorsDtype::F16: return "F16";
    case SafetensorsDtype::BF16: return "BF16";
  }
  return "?";
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path), file_(path) {
  bytes_ = file_.bytes();
  parse();
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::from_memory(std::span<const uint8_t> bytes, const std::string& name) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = name;
  f->bytes_ = bytes;
  f->parse();
  return f;
}

void SafetensorsFile::parse() {
  const std::string& name = path_;
  if (bytes_.size() < 8) fail(name, "truncated: {} bytes, too short for the 8-byte header length", bytes_.size());
  uint64_t header_len;
  std::memcpy(&header_len, bytes_.data(), 8);
  if (header_len > kMaxHeaderBytes) fail(name, "header length {} exceeds the 100 MB limit (not a safetensors file?)", header_len);
  if (header_len > bytes_.size() - 8) fail(name, "truncated: header claims {} bytes but the file has {} after the length", header_len, bytes_.size() - 8);
  std::string_view header(reinterpret_cast<const char*>(bytes_.data() + 8), static_cast<size_t>(header_len));
  if (header.empty() || header[0] != '{') fail(name, "header is not a JSON object");
  if (!is_valid_utf8(header)) fail(name, "header is not valid UTF-8");
  nlohmann::json json;
  // nlohmann keeps only the last of duplicate keys, so catch them while parsing: a duplicate
  // tensor name would otherwise silently change which bytes a weight reads.
  std::set<std::string> top_level_keys;
  std::string duplicate;
  auto on_event = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      auto key = parsed.get<std::string>();
      if (!top_level_keys.insert(key).second) duplicate = key;
    }
    return true;
  };
  try {
    json = nlohmann::json::parse(header, on_event);
  } catch (const nlohmann::json::exception& e) {
    fail(name, "malformed JSON header: {}", e.what());
  }
  if (!json.is_object()) fail(name, "header is not a JSON object");
  if (!duplicate.empty()) fail(name, "duplicate tensor name {}", printable(duplicate));

  const uint64_t buffer_size = bytes_.size() - 8 - header_len;
  const uint8_t* buffer = bytes_.data() + 8 + header_len;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = json.begin(); it != json.end(); ++it) {
    const std::string& key = it.key();
    const auto& entry = it.value();
    if (key == "__metadata__") {
      if (!entry.is_object()) fail(name, "__metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) fail(name, "__metadata__ value for {} is not a string", m.key());
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) fail(name, "tensor {}: entry is not an object", key);
    if (!entry.contains("dtype") || !entry["dtype"].is_string()) fail(name, "tensor {}: missing dtype", key);
    if (!entry.contains("shape") || !entry["shape"].is_array()) fail(name, "tensor {}: missing shape", key);
    if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2)
      fail(name, "tensor {}: data_offsets must be [begin, end]", key);
    std::string dtype = entry["dtype"].get<std::string>();
    SafetensorsTensor t;
    t.name = key;
    t.file = name;
    size_t element_bytes;
    if (dtype == "F32") t.dtype = SafetensorsDtype::F32, element_bytes = 4;
    else if (dtype == "F16") t.dtype = SafetensorsDtype::F16, element_bytes = 2;
    else if (dtype == "BF16") t.dtype = SafetensorsDtype::BF16, element_bytes = 2;
    else if (kKnownOtherDtypes.count(dtype)) fail(name, "tensor {} has dtype {}; only F32, F16 and BF16 are supported", key, dtype);
    else fail(name, "tensor {} has unknown dtype {}", key, printable(dtype));
    t.n_elements = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) fail(name, "tensor {}: shape entries must be non-negative integers", key);
      uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && t.n_elements > std::numeric_limits<uint64_t>::max() / dim) fail(name, "tensor {}: element count overflows", key);
      t.shape.push_back(dim);
      t.n_elements *= dim;
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) fail(name, "tensor {}: data_offsets must be non-negative integers", key);
    uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end) fail(name, "tensor {}: data_offsets [{}, {}] are reversed", key, begin, end);
    if (end > buffer_size) fail(name, "tensor {}: data [{}, {}) runs past the end of the {}-byte buffer (truncated file?)", key, begin, end, buffer_size);
    if (t.n_elements > std::numeric_limits<uint64_t>::max() / element_bytes || end - begin != t.n_elements * element_bytes)
      fail(name, "tensor {}: {} bytes of data for {} elements of {}", key, end - begin, t.n_elements, dtype);
    t.bytes = {buffer + begin, static_cast<size_t>(end - begin)};
    ranges.emplace_back(begin, end);
    tensors_.emplace(key, std::move(t));
  }
  // The buffer must be exactly covered: sort ranges, no gaps, no overlaps.
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [begin, end] : ranges) {
    if (begin < covered) fail(name, "tensor data ranges overlap at byte {}", begin);
    if (begin > covered) fail(name, "tensor data has a gap at bytes [{}, {})", covered, begin);
    covered = end;
  }
  if (covered != buffer_size) fail(name, "tensor data covers {} bytes but the buffer has {} (file not fully covered)", covered, buffer_size);
}

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::string& path) {
  std::string index_path;
  std::vector<std::string> shard_paths;
  if (fs::is_directory(path)) {
    if (fs::exists(fs::path(path) / "model.safetensors.index.json")) index_path = (fs::path(path) / "model.safetensors.index.json").string();
    else if (fs::exists(fs::path(path) / "model.safetensors")) shard_paths.push_back((fs::path(path) / "model.safetensors").string());
    else fail(path, "no model.safetensors or model.safetensors.index.json in this folder");
  } else if (path.ends_with(".json")) {
    index_path = path;
  } else {
    shard_paths.push_back(path);
  }
  nlohmann::json weight_map;
  if (!index_path.empty()) {
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(read_text_file(index_path));
    } catch (const nlohmann::json::exception& e) {
      fail(index_path, "malformed JSON: {}", e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail(index_path, "no weight_map object");
    weight_map = index["weight_map"];
    std::set<std::string> shards;
    for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
      if (!it.value().is_string()) fail(index_path, "weight_map entry {} is not a file name", it.key());
      std::string shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos || shard.find("..") != std::string::npos)
        fail(index_path, "weight_map entry {} names a path outside the folder: {}", it.key(), shard);
      shards.insert(shard);
    }
    auto folder = fs::path(index_path).parent_path();
    for (const auto& shard : shards) {
      auto p = (folder / shard).string();
      if (!fs::exists(p)) fail(index_path, "shard {} listed in the index is missing", shard);
      shard_paths.push_back(p);
    }
  }
  for (const auto& p : shard_paths) {
    files_.push_back(std::make_unique<SafetensorsFile>(p));
    for (const auto& [tname, tensor] : files_.back()->tensors()) {
      if (!all_.emplace(tname, &tensor).second) fail(p, "tensor {} also appears in {}", tname, all_[tname]->file);
    }
  }
  if (!index_path.empty()) {
    for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
      auto found = all_.find(it.key());
      if (found == all_.end()) fail(index_path, "tensor {} listed in the index is in no shard", it.key());
      if (fs::path(found->second->file).filename() != it.value().get<std::string>())
        fail(index_path, "tensor {} is in {} but the index says {}", it.key(), found->second->file, it.value().get<std::string>());
    }
  }
}

const SafetensorsTensor* SafetensorsCheckpoint::find(const std::string& name) const {
  auto it = all_.find(name);
  return it == all_.end() ? nullptr : it->second;
}

uint64_t SafetensorsCheckpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& f : files_) total += f->file_size();
  return total;
}

}  // namespace billion
