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
  int threads = 2;
  app.add_option("model", model_path, "GGUF file")->required();
  app.add_option("--input", input, "Lines of 'prompt ids | continuation ids'")->required();
  app.add_option("--logits", logits_out, "Output file of teacher-forced logits (float32)")->required();
  app.add_option("--threads", threads, "Threads")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    auto model = Model::load(model_path);
    Decoder& dec = model->decoder();
    ThreadPool pool(threads);
    std::ifstream in(input);
    if (!in) fail(input, "cannot open");
    std::ofstream out(logits_out, std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      const size_t bar = line.find('|');
      if (bar == std::string::npos) fail(input, "line without '|'");
      std::vector<int32_t> prompt, cont;
      std::istringstream a(line.substr(0, bar)), b(line.substr(bar + 1));
      for (int32_t t; a >> t;) prompt.push_back(t);
      for (int32_t t; b >> t;) cont.push_back(t);
      const int n = static_cast<int>(cont.size());
      std::vector<float> logits;
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
