// Helpers shared by the engine fidelity tests: reading the committed references made by
// tools/make_engine_fixtures.py and tools/make_smollm2_reference.py, running a prompt through
// a model, and measuring logit differences.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/gzip.h"
#include "core/thread_pool.h"
#include "model/model.h"

namespace billion::testing {

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  return nlohmann::json::parse(in);
}

// A .gz file of little-endian float32 values.
inline std::vector<float> read_gz_floats(const std::string& path) {
  std::string bytes = read_gzip_file(path);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

// Logits [tokens.size(), vocab] of every position of `tokens`, evaluated as one prefill.
inline std::vector<float> all_logits(Model& model, const std::vector<int32_t>& tokens, KVType kv, ThreadPool& pool) {
  KVCache cache = model.decoder().make_cache(static_cast<int>(tokens.size()), kv);
  std::vector<float> logits;
  model.decoder().forward(tokens, cache, logits, LogitsFor::All, pool);
  return logits;
}

struct Diff {
  double max_abs = 0;      // max |ours - reference|
  double ref_max_abs = 0;  // max |reference|
  double relative() const { return ref_max_abs > 0 ? max_abs / ref_max_abs : max_abs; }
};

inline Diff compare(const float* ours, const float* ref, size_t n) {
  Diff d;
  for (size_t i = 0; i < n; ++i) {
    d.max_abs = std::max(d.max_abs, std::fabs(double(ours[i]) - double(ref[i])));
    d.ref_max_abs = std::max(d.ref_max_abs, std::fabs(double(ref[i])));
  }
  return d;
}

inline size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t k = 0;
  while (k < a.size() && k < b.size() && a[k] == b[k]) ++k;
  return k;
}

}  // namespace billion::testing
