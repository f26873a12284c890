// Numerical parity with llama.cpp, our side (bench/parity_llama_cpp.py drives it and prints
// the comparison). For each prompt line of the input file — "prompt ids | continuation ids",
// space-separated — it runs the engine's default path (weights as stored, F16 KV cache):
//   - greedy: prefill the prompt in one forward call, then 64 (= continuation length) single-
//     token greedy decodes; prints the tokens;
//   - teacher-forced: prefill the prompt, then feed the given continuation (llama.cpp's greedy
//     tokens) one token at a time; writes the logits before each continuation token
//     ([n_prompts, n_steps, vocab] float32) to --logits, so they compare position for position.
// Prefill-then-single-tokens is exactly how llama-cpp-python's Llama.eval is used by the script.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/model.h"

using namespace billion;

int main(int argc, char** argv) {
  CLI::App app{"Our greedy tokens and teacher-forced logits, for bench/parity_llama_cpp.py"};
  std::string model_path, input, logits_out;
  std::string dump;
  int dump_line = 0, dump_steps = 4;
  int threads = 2;
  app.add_option("model", model_path, "GGUF file")->required();
  app.add_option("--input", input, "Lines of 'prompt ids | continuation ids'")->required();
  app.add_option("--logits", logits_out, "Output file of teacher-forced logits (float32)")->required();
  app.add_option("--threads", threads, "Threads")->capture_default_str();
  app.add_option("--dump", dump, "Also write every named intermediate tensor (Decoder::set_trace) of one prompt's "
                 "prefill and its first decode steps to this file, for bench/parity_llama_cpp.py --dump")->capture_default_str();
  app.add_option("--dump-line", dump_line, "Which input line --dump traces")->capture_default_str();
  app.add_option("--dump-steps", dump_steps, "How many teacher-forced decode steps --dump traces")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    auto model = Model::load(model_path);
    Decoder& dec = model->decoder();
    ThreadPool pool(threads);
    std::ifstream in(input);
    if (!in) fail(input, "cannot open");
    std::ofstream out(logits_out, std::ios::binary);
    std::string line;
    std::ofstream dump_out;
    int step = 0;  // 0: the prefill; s: decode step s (while tracing)
    if (!dump.empty()) {
      dump_out.open(dump, std::ios::binary);
      if (!dump_out) fail(dump, "cannot create");
    }
    // One record per tensor: u32 name length, name, i32 layer, i32 step, i64 rows, i64 width,
    // rows*width float32.
    auto write_tensor = [&](const char* name, int layer, const float* data, int64_t rows, int64_t width) {
      const uint32_t len = static_cast<uint32_t>(std::strlen(name));
      dump_out.write(reinterpret_cast<const char*>(&len), 4);
      dump_out.write(name, len);
      const int32_t head[2] = {layer, step};
      dump_out.write(reinterpret_cast<const char*>(head), sizeof head);
      const int64_t shape[2] = {rows, width};
      dump_out.write(reinterpret_cast<const char*>(shape), sizeof shape);
      dump_out.write(reinterpret_cast<const char*>(data), std::streamsize(rows * width * sizeof(float)));
    };
    int line_no = -1;
    while (std::getline(in, line)) {
      ++line_no;
      const size_t bar = line.find('|');
      if (bar == std::string::npos) fail(input, "line without '|'");
      std::vector<int32_t> prompt, cont;
      std::istringstream a(line.substr(0, bar)), b(line.substr(bar + 1));
      for (int32_t t; a >> t;) prompt.push_back(t);
      for (int32_t t; b >> t;) cont.push_back(t);
      const int n = static_cast<int>(cont.size());
      std::vector<float> logits;
      if (!dump.empty() && line_no == dump_line) {
        // Traced: the prompt in one call (all logits, as llama-cpp-python with logits_all), then
        // single-token steps on the given continuation.
        dec.set_trace(write_tensor);
        KVCache cache = dec.make_cache(static_cast<int>(prompt.size()) + n, KVType::F16);
        step = 0;
        dec.forward(prompt, cache, logits, LogitsFor::All, pool);
        write_tensor("result_output", -1, logits.data(), static_cast<int64_t>(prompt.size()), dec.spec().vocab_size);
        for (int i = 0; i < std::min(dump_steps, n); ++i) {
          step = i + 1;
          std::vector<int32_t> one{cont[i]};
          dec.forward(one, cache, logits, LogitsFor::Last, pool);
          write_tensor("result_output", -1, logits.data(), 1, dec.spec().vocab_size);
        }
        dec.set_trace(nullptr);
      }
      // Greedy, our own path.
      KVCache cache = dec.make_cache(static_cast<int>(prompt.size()) + n, KVType::F16);
      dec.forward(prompt, cache, logits, LogitsFor::Last, pool);
      std::printf("greedy");
      for (int i = 0; i < n; ++i) {
        const int32_t t = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        std::printf(" %d", t);
        std::vector<int32_t> one{t};
        dec.forward(one, cache, logits, LogitsFor::Last, pool);
      }
      std::printf("\n");
      // Teacher-forced on the given continuation.
      cache.truncate(0);
      dec.forward(prompt, cache, logits, LogitsFor::Last, pool);
      for (int i = 0; i < n; ++i) {
        out.write(reinterpret_cast<const char*>(logits.data()), std::streamsize(logits.size() * sizeof(float)));
        std::vector<int32_t> one{cont[i]};
        if (i + 1 < n) dec.forward(one, cache, logits, LogitsFor::Last, pool);
      }
    }
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_parity: %s\n", e.what());
    return 1;
  }
  return 0;
}
