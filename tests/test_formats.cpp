// File readers against hostile input: every truncation point, lying sizes and offsets,
// overflowing counts, duplicates, unknown types, non-UTF-8 keys, malformed JSON. Each must be a
// billion::Error naming the file — never a crash or an out-of-bounds read (ASan build checks).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/hf_folder.h"
#include "formats/safetensors.h"
#include "model/architecture.h"
#include "model/model_info.h"

using namespace billion;
namespace fs = std::filesystem;

namespace {

GgufValue u32(uint32_t x) {
  GgufValue v;
  v.type = GgufValueType::U32;
  v.u = x;
  v.i = x;
  return v;
}

std::vector<uint8_t> small_gguf() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 1);
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_bool("flag", true);
  w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "\xff"});
  GgufValue nested;  // array of arrays of u32
  nested.type = GgufValueType::ARRAY;
  nested.array_type = GgufValueType::ARRAY;
  for (int k = 0; k < 2; ++k) {
    GgufValue inner;
    inner.type = GgufValueType::ARRAY;
    inner.array_type = GgufValueType::U32;
    inner.array = {u32(k), u32(k + 10)};
    nested.array.push_back(inner);
  }
  w.set("nested", nested);
  GgufValue i64;
  i64.type = GgufValueType::I64;
  i64.i = -5;
  w.set("signed", i64);
  std::vector<uint8_t> f32_bytes(4 * 8);
  for (int k = 0; k < 8; ++k) {
    float x = k * 0.5f;
    std::memcpy(&f32_bytes[4 * k], &x, 4);
  }
  w.add_tensor("t.f32", GgmlType::F32, {4, 2}, f32_bytes);
  w.add_tensor("t.q8", GgmlType::Q8_0, {32}, std::vector<uint8_t>(34, 1));
  return w.to_bytes();
}

void expect_error_mentioning(const std::function<void()>& fn, const std::string& what) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning " << what;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

template <typename T>
void patch(std::vector<uint8_t>& bytes, size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

std::string temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("billion-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

}  // namespace

TEST(Gguf, RoundTripsEveryValueType) {
  auto bytes = small_gguf();
  auto f = GgufFile::from_memory(bytes, "mem.gguf");
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_uint("llama.block_count"), 1u);
  EXPECT_FLOAT_EQ(f->get_float("llama.rope.freq_base"), 10000.0f);
  EXPECT_TRUE(f->get_bool("flag"));
  EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens")[2], "\xff");  // byte tokens need not be UTF-8
  EXPECT_EQ(f->find("nested")->array[1].array[1].u, 11u);
  EXPECT_EQ(f->find("signed")->i, -5);
  ASSERT_EQ(f->tensors().size(), 2u);
  const auto* t = f->find_tensor("t.f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dims, (std::vector<uint64_t>{4, 2}));
  EXPECT_EQ(t->n_bytes, 32u);
  float x;
  std::memcpy(&x, t->data + 4 * 3, 4);
  EXPECT_FLOAT_EQ(x, 1.5f);
  EXPECT_EQ(static_cast<size_t>(t->data - bytes.data()) % 32, 0u);
  EXPECT_EQ(f->find_tensor("t.q8")->n_bytes, 34u);
  expect_error_mentioning([&] { f->get_uint("general.architecture"); }, "general.architecture");
  expect_error_mentioning([&] { f->get_string("absent.key"); }, "absent.key: missing");
}

TEST(Gguf, EveryTruncationIsAnErrorNamingTheFile) {
  auto bytes = small_gguf();
  // The padding after the last tensor's data is optional, so the file is complete from there.
  auto full = GgufFile::from_memory(bytes, "full.gguf");
  size_t needed = 0;
  for (const auto& t : full->tensors()) needed = std::max<size_t>(needed, full->data_offset() + t.offset + t.n_bytes);
  ASSERT_LT(needed, bytes.size());
  for (size_t n = 0; n < bytes.size(); ++n) {
    // A copy of exactly n bytes on the heap, so ASan sees any read past the end.
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
    try {
      GgufFile::from_memory(cut, "cut.gguf");
      if (n < needed) ADD_FAILURE() << "truncation at " << n << " of " << bytes.size() << " was accepted";
    } catch (const Error& e) {
      EXPECT_LT(n, needed) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("cut.gguf: ", 0), 0u) << e.what();
    }
  }
}

TEST(Gguf, LyingCountsSizesAndOffsets) {
  auto base = small_gguf();
  {  // tensor count far beyond what the file holds
    auto b = base;
    patch<uint64_t>(b, 8, uint64_t(1) << 60);
    expect_error_mentioning([&] { GgufFile::from_memory(b, "x.gguf"); }, "tensor count");
  }
  {  // metadata count likewise
    auto b = base;
    patch<uint64_t>(b, 16, ~uint64_t(0));
    expect_error_mentioning([&] { GgufFile::from_memory(b, "x.gguf"); }, "metadata count");
  }
  {  // first key length lies
    auto b = base;
    patch<uint64_t>(b, 24, uint64_t(1) << 62);
    expect_error_mentioning([&] { GgufFile::from_memory(b, "x.gguf"); }, "metadata key");
  }
  {  // bad magic, v1, big-endian, unknown version
    auto b = base;
    b[0] = 'X';
    expect_error_mentioning([&] { GgufFile::from_memory(b, "x.gguf"); }, "bad magic");
    b = base;
    patch<uint32_t>(b, 4, 1);
    expect_error_mentioning([&] { GgufFile::from_memory(b, "x.gguf"); }, "version 1");
    patch<uint32_t>(b, 4, 0x03000000);
    expect_error_mentioning([&] { GgufFile::from_memory(b, "x.gguf"); }, "big-endian");
    patch<uint32_t>(b, 4, 7);
    expect_error_mentioning([&] { GgufFile::from_memory(b, "x.gguf"); }, "unsupported GGUF version 7");
  }
}

TEST(Gguf, StructuralErrors) {
  auto make = [](auto&& edit) {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    edit(w);
    return w.to_bytes();
  };
  // Duplicate tensor names.
  auto dup = make([](GgufWriter& w) {
    w.add_tensor("a", GgmlType::F32, {1}, std::vector<uint8_t>(4));
    w.add_tensor("a", GgmlType::F32, {1}, std::vector<uint8_t>(4));
  });
  expect_error_mentioning([&] { GgufFile::from_memory(dup, "d.gguf"); }, "duplicate tensor name a");
  // Unknown ggml type: patch the type field of the only tensor (after name, n_dims, dims).
  auto one = make([](GgufWriter& w) { w.add_tensor("zz", GgmlType::F32, {1}, std::vector<uint8_t>(4)); });
  auto pos = std::search(one.begin(), one.end(), std::begin("zz"), std::begin("zz") + 2) - one.begin();
  auto unknown = one;
  patch<uint32_t>(unknown, pos + 2 + 4 + 8, 31);  // id 31 was removed from ggml
  expect_error_mentioning([&] { GgufFile::from_memory(unknown, "u.gguf"); }, "unknown ggml type 31");
  auto lying_offset = one;
  patch<uint64_t>(lying_offset, pos + 2 + 4 + 8 + 4, 64);
  expect_error_mentioning([&] { GgufFile::from_memory(lying_offset, "o.gguf"); }, "runs past the end");
  auto misaligned = one;
  patch<uint64_t>(misaligned, pos + 2 + 4 + 8 + 4, 3);
  expect_error_mentioning([&] { GgufFile::from_memory(misaligned, "m.gguf"); }, "not a multiple of the alignment");
  auto huge_dim = one;
  patch<uint64_t>(huge_dim, pos + 2 + 4, uint64_t(1) << 50);
  expect_error_mentioning([&] { GgufFile::from_memory(huge_dim, "h.gguf"); }, "absurdly large");
  auto many_dims = one;
  patch<uint32_t>(many_dims, pos + 2, 9);
  expect_error_mentioning([&] { GgufFile::from_memory(many_dims, "n.gguf"); }, "9 dimensions");
  // Non-UTF-8 key.
  auto bad_key = make([](GgufWriter& w) { w.set_string("k\xc3\x28", "v"); });
  expect_error_mentioning([&] { GgufFile::from_memory(bad_key, "k.gguf"); }, "not valid UTF-8");
  // Duplicate key: write two by hand by renaming one.
  auto two = make([](GgufWriter& w) { w.set_string("general.architecturX", "x"); });
  auto k = std::search(two.begin(), two.end(), std::begin("architecturX"), std::begin("architecturX") + 12) - two.begin();
  two[k + 11] = 'e';
  expect_error_mentioning([&] { GgufFile::from_memory(two, "dk.gguf"); }, "duplicate metadata key general.architecture");
  // Block type with a row length that is not a multiple of its block.
  GgufWriter w;
  EXPECT_THROW(w.add_tensor("q", GgmlType::Q4_0, {33}, std::vector<uint8_t>{}), Error);
  // Invalid bool and bad alignment values.
  auto alignment = make([](GgufWriter& w) { w.set_u32("general.alignment", 12); });
  expect_error_mentioning([&] { GgufFile::from_memory(alignment, "a.gguf"); }, "general.alignment 12");
  auto boolean = make([](GgufWriter& w) { w.set_bool("flag", true); });
  auto b = std::search(boolean.begin(), boolean.end(), std::begin("flag"), std::begin("flag") + 4) - boolean.begin();
  boolean[b + 4 + 4] = 7;
  expect_error_mentioning([&] { GgufFile::from_memory(boolean, "b.gguf"); }, "neither 0 nor 1");
}

TEST(Gguf, DeeplyNestedArraysAreRefused) {
  GgufValue v = u32(1);
  for (int depth = 0; depth < 12; ++depth) {
    GgufValue outer;
    outer.type = GgufValueType::ARRAY;
    outer.array_type = v.type;
    outer.array = {v};
    v = outer;
  }
  GgufWriter w;
  w.set("deep", v);
  auto bytes = w.to_bytes();
  expect_error_mentioning([&] { GgufFile::from_memory(bytes, "deep.gguf"); }, "nested deeper");
}

TEST(Gguf, WriterWritesAtomicallyAndReaderMapsTheFile) {
  auto dir = temp_dir("gguf");
  auto path = dir + "/model.gguf";
  GgufWriter w(64);
  w.set_string("general.architecture", "llama");
  w.add_tensor("t", GgmlType::F16, {3}, std::vector<uint8_t>(6, 0x3c));
  w.write(path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  GgufFile f(path);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.find_tensor("t")->data[5], 0x3c);
  expect_error_mentioning([&] { GgufWriter().write(dir + "/no/such/dir/x.gguf"); }, "cannot create");
  expect_error_mentioning([&] { GgufFile(dir + "/absent.gguf"); }, "absent.gguf: cannot open");
  fs::remove_all(dir);
}

namespace {

std::vector<uint8_t> safetensors_bytes(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out(8);
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), header.begin(), header.end());
  out.resize(out.size() + data_bytes, 0x11);
  return out;
}

}  // namespace

TEST(Safetensors, ReadsTensorsInPlace) {
  auto bytes = safetensors_bytes(
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},"c":{"dtype":"F16","shape":[],"data_offsets":[22,24]}})",
      24);
  auto f = SafetensorsFile::from_memory(bytes, "m.safetensors");
  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const auto& a = f->tensors().at("a");
  EXPECT_EQ(a.shape, (std::vector<uint64_t>{2, 2}));
  EXPECT_EQ(a.bytes.data(), bytes.data() + bytes.size() - 24);
  EXPECT_EQ(f->tensors().at("c").n_elements, 1u);  // a 0-rank scalar
}

TEST(Safetensors, HostileFiles) {
  std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  auto base = safetensors_bytes(good, 8);
  for (size_t n = 0; n < base.size(); ++n) {
    std::vector<uint8_t> cut(base.begin(), base.begin() + n);
    try {
      SafetensorsFile::from_memory(cut, "cut.safetensors");
      ADD_FAILURE() << "truncation at " << n << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("cut.safetensors: ", 0), 0u) << e.what();
    }
  }
  auto check = [](const std::string& header, size_t data, const std::string& what) {
    auto b = safetensors_bytes(header, data);
    expect_error_mentioning([&] { SafetensorsFile::from_memory(b, "s.safetensors"); }, what);
  };
  check(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8, "malformed JSON");
  check(R"([1,2])", 0, "not a JSON object");
  check(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8, "dtype I64; only F32, F16 and BF16");
  check(R"({"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,8]}})", 8, "unknown dtype");
  check(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, "8 bytes of data for 3 elements");
  check(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16, "duplicate tensor name");
  check(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12, "overlap");
  check(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12, "gap");
  check(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 12, "not fully covered");
  check(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}})", 8, "runs past the end");
  check(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "non-negative");
  check(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", 8, "overflows");
  check(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "reversed");
  check("{\"\xff\":{}}", 0, "not valid UTF-8");
  auto huge = safetensors_bytes("{}", 0);
  uint64_t n = uint64_t(1) << 40;
  std::memcpy(huge.data(), &n, 8);
  expect_error_mentioning([&] { SafetensorsFile::from_memory(huge, "h.safetensors"); }, "100 MB limit");
}

TEST(Safetensors, ShardedCheckpoint) {
  auto dir = temp_dir("shards");
  auto write = [&](const std::string& name, const std::vector<uint8_t>& b) {
    std::ofstream(dir + "/" + name, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), b.size());
  };
  write("model-00001-of-00002.safetensors", safetensors_bytes(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
  write("model-00002-of-00002.safetensors", safetensors_bytes(R"({"y":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4));
  std::ofstream(dir + "/model.safetensors.index.json")
      << R"({"metadata":{"total_size":8},"weight_map":{"x":"model-00001-of-00002.safetensors","y":"model-00002-of-00002.safetensors"}})";
  SafetensorsCheckpoint ckpt(dir);
  EXPECT_EQ(ckpt.tensors().size(), 2u);
  EXPECT_EQ(ckpt.find("y")->dtype, SafetensorsDtype::F16);
  std::ofstream(dir + "/model.safetensors.index.json")
      << R"({"weight_map":{"x":"model-00002-of-00002.safetensors","y":"model-00002-of-00002.safetensors"}})";
  expect_error_mentioning([&] { SafetensorsCheckpoint c(dir); }, "tensor x listed in the index is in no shard");
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map":{"x":"model-00009-of-00009.safetensors"}})";
  expect_error_mentioning([&] { SafetensorsCheckpoint c(dir); }, "missing");
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map":{"x":"../../etc/passwd"}})";
  expect_error_mentioning([&] { SafetensorsCheckpoint c(dir); }, "outside the folder");
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map": )";
  expect_error_mentioning([&] { SafetensorsCheckpoint c(dir); }, "model.safetensors.index.json: malformed JSON");
  fs::remove_all(dir);
}

TEST(HfFolder, ConfigsOfTheTargetModels) {
  std::string shared = BILLION_SHARED_DIR "/models/";
  auto llama = spec_from_hf_config(read_json_file(shared + "llama3.2-1b/config.json"), "llama");
  EXPECT_EQ(llama.n_layers, 16);
  EXPECT_EQ(llama.n_kv_heads, 8);
  EXPECT_TRUE(llama.tied_embeddings);
  ASSERT_TRUE(llama.llama3_scaling.has_value());
  EXPECT_DOUBLE_EQ(llama.llama3_scaling->factor, 32);
  auto neox = spec_from_hf_config(read_json_file(shared + "pythia-1b/config.json"), "pythia");
  EXPECT_EQ(neox.rotary_dims, 64);  // 256 × 0.25
  EXPECT_TRUE(neox.parallel_residual);
  EXPECT_EQ(neox.mlp, MlpKind::GELU);
  auto stablelm = spec_from_hf_config(read_json_file(shared + "stablelm/config.json"), "stablelm");
  EXPECT_EQ(stablelm.rotary_dims, 16);
  EXPECT_TRUE(stablelm.qkv_bias);
  EXPECT_FALSE(stablelm.parallel_residual);
  EXPECT_EQ(stablelm.norm, NormKind::LayerNorm);
  auto tiny = spec_from_hf_config(read_json_file(shared + "tinyllama/config.json"), "tinyllama");
  EXPECT_FALSE(tiny.tied_embeddings);
  EXPECT_EQ(tiny.n_kv_heads, 4);
  // Parameter counts of the published models, from their shapes.
  EXPECT_NEAR(llama.parameter_count() / 1e9, 1.236, 0.001);
  EXPECT_NEAR(tiny.parameter_count() / 1e9, 1.100, 0.001);
  EXPECT_NEAR(neox.parameter_count() / 1e9, 1.012, 0.002);

  auto generation = read_generation_config(shared + "llama3.2-1b");
  EXPECT_EQ(generation.eos_token_ids, (std::vector<int>{128001, 128008, 128009}));
  auto tokenizer = read_tokenizer_config(shared + "llama3.2-1b");
  ASSERT_TRUE(tokenizer.chat_template.has_value());
  EXPECT_NE(tokenizer.chat_template->find("strftime_now"), std::string::npos);
  EXPECT_EQ(tokenizer.bos_token.value_or(""), "<|begin_of_text|>");
}

TEST(HfFolder, Llama3RopeFrequencies) {
  // Reference values computed by hand from the llama3 rule: the highest frequency (i = 0) is
  // kept, the lowest is divided by the factor.
  auto spec = spec_from_hf_config(read_json_file(BILLION_SHARED_DIR "/models/llama3.2-1b/config.json"), "llama");
  auto inv = spec.rope_inverse_frequencies();
  ASSERT_EQ(inv.size(), 32u);
  EXPECT_DOUBLE_EQ(inv[0], 1.0);
  EXPECT_NEAR(inv[31], std::pow(500000.0, -62.0 / 64) / 32, 1e-15);
}

TEST(HfFolder, BadConfigsNameTheFile) {
  auto dir = temp_dir("hf");
  std::ofstream(dir + "/config.json") << "{\"model_type\": \"llama\", ";
  expect_error_mentioning([&] { inspect_model(dir); }, "config.json: malformed JSON");
  std::ofstream(dir + "/config.json") << R"({"model_type":"llama","hidden_size":"big"})";
  auto info = inspect_model(dir);
  ASSERT_TRUE(info.spec_error.has_value());
  EXPECT_NE(info.spec_error->find("hidden_size"), std::string::npos);
  std::ofstream(dir + "/config.json") << R"({"model_type":"bert","hidden_size":8})";
  EXPECT_NE(inspect_model(dir).spec_error->find("bert"), std::string::npos);
  std::ofstream(dir + "/generation_config.json") << R"({"eos_token_id": "two"})";
  expect_error_mentioning([&] { read_generation_config(dir); }, "generation_config.json: eos_token_id");
  std::ofstream(dir + "/tokenizer_config.json") << "\xff\xfe";
  expect_error_mentioning([&] { read_tokenizer_config(dir); }, "tokenizer_config.json: not valid UTF-8");
  fs::remove_all(dir);
}

TEST(Gguf, ReadsAFileWrittenByTheGgufPythonPackage) {
  // fuzz/corpus/gguf/tiny_llama.gguf is written by tools/make_fuzz_seeds.py with PyPI gguf.
  GgufFile f(BILLION_SOURCE_DIR "/fuzz/corpus/gguf/tiny_llama.gguf");
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("llama.attention.head_count_kv"), 2u);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "b", "ab", "<s>"}));
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.merges"), (std::vector<std::string>{"a b"}));
  const auto* nested = f.find("test.nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->array.size(), 2u);
  EXPECT_EQ(nested->array[0].array[1].i, 2);
  EXPECT_DOUBLE_EQ(f.get_float("test.f64"), 0.25);
  EXPECT_EQ(f.find("test.i8")->i, -3);
  const auto* embd = f.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dims, (std::vector<uint64_t>{32, 4}));  // numpy (4, 32) reversed
  EXPECT_EQ(f.find_tensor("blk.0.attn_norm.weight")->type, GgmlType::F16);
  const auto* q = f.find_tensor("blk.0.attn_q.weight");
  EXPECT_EQ(q->type, GgmlType::Q8_0);
  EXPECT_EQ(q->n_bytes, 2u * 2 * 34);
  auto spec = spec_from_gguf(f);
  EXPECT_EQ(spec.n_kv_heads, 2);
  EXPECT_EQ(spec.rope_style, RopeStyle::AdjacentPairs);
}

TEST(Gguf, TypeSizesMatchGgml) {
  // Bytes per block as ggml defines them (GGML_QUANT_SIZES in gguf-py).
  struct Case { GgmlType type; uint32_t block, bytes; };
  for (auto c : {Case{GgmlType::Q4_0, 32, 18}, {GgmlType::Q4_1, 32, 20}, {GgmlType::Q5_0, 32, 22}, {GgmlType::Q5_1, 32, 24},
                 {GgmlType::Q8_0, 32, 34}, {GgmlType::Q2_K, 256, 84}, {GgmlType::Q3_K, 256, 110}, {GgmlType::Q4_K, 256, 144},
                 {GgmlType::Q5_K, 256, 176}, {GgmlType::Q6_K, 256, 210}, {GgmlType::BF16, 1, 2}}) {
    auto t = ggml_type_traits(static_cast<uint32_t>(c.type));
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->block_elements, c.block) << t->name;
    EXPECT_EQ(t->block_bytes, c.bytes) << t->name;
  }
  EXPECT_FALSE(ggml_type_traits(4).has_value());  // Q4_2, removed
}
