// Our side of the peer benchmark against llama.cpp (bench/bench_peer.py runs both engines,
// alternating, and prints the comparison). For one GGUF, through the library
// (Decoder::forward, default path: weights as stored, F16 KV cache), it measures what
// llama-bench measures:
//   ppN   — evaluate N random tokens in one forward call on an empty cache (a fresh cache per
//           run), logits of the last position only;
//   tgN   — N single-token decodes of random tokens from an empty cache;
//   tgN@dD — the same after a D-token prefill (untimed): decode at depth D.
// One warm-up of each test, then --runs timed runs; mean ± std of tokens/s, peak RSS (VmHWM).
// Prints JSON on stdout (or --out).
// --serve: load, print {"ready": ...} and then run one test per line read from stdin (a test
// name, e.g. tg128@d512), printing {"test", "tok_s"} for each; "end" prints the summary (load
// time, peak RSS) and exits. bench_peer.py drives llama.cpp the same way and alternates the two
// engines run by run, so a pair of runs sees the same machine (its bandwidth drifts by 2x within
// minutes, which one engine's three runs in a row and then the other's did not cancel out).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/process_memory.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/weights.h"

using namespace billion;
using Clock = std::chrono::steady_clock;

namespace {

struct Test {
  std::string name;
  int prompt = 0, gen = 0, depth = 0;
};

Test parse_test(const std::string& item) {
  Test t{item};
  int n = 0, d = 0;
  if (std::sscanf(item.c_str(), "pp%d", &n) == 1) t.prompt = n;
  else if (std::sscanf(item.c_str(), "tg%d@d%d", &n, &d) >= 1) t.gen = n, t.depth = d;
  else fail("--tests", "'{}' is not ppN, tgN or tgN@dD", item);
  if (t.prompt < 0 || t.gen < 0 || t.depth < 0 || t.prompt + t.gen == 0) fail("--tests", "'{}' asks for no tokens", item);
  return t;
}

// One run of a test: returns tokens per second of its timed part.
double run_once(Model& m, const Test& t, std::mt19937& rng, ThreadPool& pool) {
  Decoder& dec = m.decoder();
  const int vocab = m.spec().vocab_size;
  auto random_tokens = [&](int n) {
    std::vector<int32_t> v(n);
    for (auto& x : v) x = static_cast<int32_t>(rng() % vocab);
    return v;
  };
  KVCache cache = dec.make_cache(t.depth + t.prompt + t.gen, KVType::F16);
  std::vector<float> logits;
  if (t.depth > 0) dec.forward(random_tokens(t.depth), cache, logits, LogitsFor::Last, pool);
  if (t.prompt > 0) {
    auto toks = random_tokens(t.prompt);
    auto t0 = Clock::now();
    dec.forward(toks, cache, logits, LogitsFor::Last, pool);
    return t.prompt / std::chrono::duration<double>(Clock::now() - t0).count();
  }
  auto toks = random_tokens(t.gen);
  auto t0 = Clock::now();
  for (int i = 0; i < t.gen; ++i) dec.forward(std::span<const int32_t>(&toks[i], 1), cache, logits, LogitsFor::Last, pool);
  return t.gen / std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Our engine's pp/tg speed on one GGUF, for bench/bench_peer.py"};
  std::string model_path, out, quantize, tests_arg = "pp512,tg128,pp64,tg128@d512";
  int runs = 5, threads = 2;
  app.add_option("model", model_path, "GGUF file")->required();
  app.add_option("--tests", tests_arg, "Comma-separated: ppN, tgN, tgN@dD")->capture_default_str();
  app.add_option("--runs", runs, "Timed runs after one warm-up")->capture_default_str();
  app.add_option("--threads", threads, "Threads")->capture_default_str();
  app.add_option("--out", out, "JSON file (default: stdout)");
  app.add_option("--quantize", quantize, "Quantize float weights at load: int8 (Q8_0) or int4 (Q4_0)");
  bool no_interleave = false;
  app.add_flag("--no-interleave", no_interleave, "Keep every matrix in the file's layout and pages (A/B of the interleaved kernels)");
  bool file_pages = false;
  app.add_flag("--file-pages", file_pages, "Copy only the matrices re-laid or converted; leave the rest in the file's pages (A/B of the huge-page copy)");
  bool serve = false;
  app.add_flag("--serve", serve, "Run one test per stdin line, printing one JSON line each (for bench_peer.py); 'end' exits");
  CLI11_PARSE(app, argc, argv);
  try {
    std::vector<Test> tests;
    std::stringstream ss(tests_arg);
    for (std::string item; std::getline(ss, item, ',');) tests.push_back(parse_test(item));
    auto t_load = Clock::now();
    LoadOptions load;
    if (!quantize.empty()) load.quantization = parse_load_quantization(quantize);
    load.interleave_weights = !no_interleave;
    load.copy_weights = !file_pages;
    auto model = Model::load(model_path, load);
    const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();
    ThreadPool pool(threads);
    std::mt19937 rng(42);
    auto summary = [&] {
      return nlohmann::json{{"engine", "billion"}, {"model", model_path}, {"quantize", quantize}, {"interleave", !no_interleave},
                            {"file_pages", file_pages}, {"threads", pool.size()},
                            {"kernels", kernels::isa_name(kernels::active_kernels().isa)}, {"load_s", load_s},
                            {"peak_rss_mib", peak_rss_bytes() / 1048576.0}};
    };
    if (serve) {
      std::printf("%s\n", nlohmann::json{{"ready", true}, {"load_s", load_s}}.dump().c_str());
      std::fflush(stdout);
      for (std::string line; std::getline(std::cin, line);) {
        if (line == "end") break;
        const Test t = parse_test(line);
        const double tok_s = run_once(*model, t, rng, pool);
        std::printf("%s\n", nlohmann::json{{"test", t.name}, {"tok_s", tok_s}}.dump().c_str());
        std::fflush(stdout);
      }
      std::printf("%s\n", summary().dump().c_str());
      return 0;
    }
    nlohmann::json results = nlohmann::json::object();
    for (const Test& t : tests) {
      run_once(*model, t, rng, pool);  // warm-up
      std::vector<double> v;
      for (int r = 0; r < runs; ++r) v.push_back(run_once(*model, t, rng, pool));
      double mean = 0, var = 0;
      for (double x : v) mean += x;
      mean /= v.size();
      for (double x : v) var += (x - mean) * (x - mean);
      const double sd = v.size() > 1 ? std::sqrt(var / (v.size() - 1)) : 0.0;
      results[t.name] = {{"mean", mean}, {"std", sd}, {"runs", v}};
      std::fprintf(stderr, "ours %s: %.2f ± %.2f tok/s\n", t.name.c_str(), mean, sd);
    }
    nlohmann::json j = summary();
    j["tests"] = results;
    if (out.empty()) std::printf("%s\n", j.dump().c_str());
    else std::ofstream(out) << j.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_peer: %s\n", e.what());
    return 1;
  }
  return 0;
}
