// Machine probe: DRAM read bandwidth (1 and 2 threads, or --threads) and peak FMA GFLOP/s per
// thread, the two roofs the matmul numbers of bench_kernels are judged against. Writes JSON
// (--out, default bench-probe.json) and prints a short table.
//
// The read roof is measured on huge-page memory (core/huge_page_buffer.h), where the loader puts
// the weights; the same reads from ordinary 4 KiB pages, and with --file F from a read-only
// mapping of F (page-cache pages, where an mmap-ing engine streams its weights from), show what
// the page size costs. --int8-ops adds the throughput of the AVX2 int8 instructions (below).
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cpu_features.h"
#include "core/huge_page_buffer.h"
#include "core/thread_pool.h"

using namespace billion;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Sum of 64-bit words with four independent accumulators (the compiler vectorizes it with
// SSE2, which is enough to saturate DRAM from one core); the result is used so the loads stay.
uint64_t read_sum(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  return a + b + c + d;
}

// The same sum with 256-bit loads, 128 bytes per iteration, and a software prefetch into L2
// 1 KiB ahead — the way the matmul kernels read weights. On the Zen 4 VM the plain loop above
// read ~29 GB/s with two threads while llama.cpp's F16 decode streamed ~38 GB/s, so the plain
// loop alone underestimates the roof; the probe reports the faster of the two.
__attribute__((target("avx2"))) uint64_t read_sum_avx2(const uint64_t* p, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(p + i) + 1024, _MM_HINT_T1);
    a = _mm256_add_epi64(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_add_epi64(b, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
    c = _mm256_add_epi64(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 8)));
    d = _mm256_add_epi64(d, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 12)));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
  uint64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) sum += p[i];
  return sum;
}

// Peak FMA throughput: 10 independent accumulator chains hide the 4-cycle FMA latency on two
// FMA pipes. Compiled for AVX2/FMA only here and called after the CPU check.
__attribute__((target("avx2,fma"))) double fma_loop(int64_t iters) {
  __m256 acc[10];
  for (int i = 0; i < 10; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 10; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
  __m256 s = acc[0];
  for (int i = 1; i < 10; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

// --int8-ops: the throughput of the integer instructions the AVX2 int8 tiles are built from,
// alone and mixed in pairs, on one thread (billions of instructions per second). Twelve
// independent chains hide the latencies. Two instructions that issue to separate pipes run at
// about the sum of their rates when mixed, two that share pipes at about the rate of one: on
// Zen 4 vpsignb, vpmaddubsw and vpmaddwd share, which is why the AVX2 Q8_0 tile (all three per
// four products of a row) trails the Q4_0 one (docs/PERFORMANCE.md).
enum class Int8Op { Maddubs, Madd, Sign, Add };

const char* int8_op_name(Int8Op op) {
  switch (op) {
    case Int8Op::Maddubs: return "vpmaddubsw";
    case Int8Op::Madd: return "vpmaddwd";
    case Int8Op::Sign: return "vpsignb";
    case Int8Op::Add: return "vpaddd";
  }
  return "?";
}

template <Int8Op Op>
__attribute__((target("avx2"), always_inline)) inline __m256i int8_op(__m256i x, __m256i y) {
  if constexpr (Op == Int8Op::Maddubs) return _mm256_maddubs_epi16(x, y);
  else if constexpr (Op == Int8Op::Madd) return _mm256_madd_epi16(x, y);
  else if constexpr (Op == Int8Op::Sign) return _mm256_sign_epi8(x, y);
  else return _mm256_add_epi32(x, y);
}

// Six chains of A and six of B, interleaved; instructions per second.
template <Int8Op A, Int8Op B>
__attribute__((target("avx2"))) double int8_op_rate(int64_t iters) {
  const __m256i y = _mm256_set1_epi8(3);
  __m256i c0 = _mm256_set1_epi8(1), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0,
          c10 = c0, c11 = c0;
  const double t0 = now();
  for (int64_t i = 0; i < iters; ++i) {
    c0 = int8_op<A>(c0, y), c1 = int8_op<B>(c1, y), c2 = int8_op<A>(c2, y), c3 = int8_op<B>(c3, y);
    c4 = int8_op<A>(c4, y), c5 = int8_op<B>(c5, y), c6 = int8_op<A>(c6, y), c7 = int8_op<B>(c7, y);
    c8 = int8_op<A>(c8, y), c9 = int8_op<B>(c9, y), c10 = int8_op<A>(c10, y), c11 = int8_op<B>(c11, y);
    // Keeps every chain in a register and every instruction in the loop.
    __asm__ volatile("" : "+x"(c0), "+x"(c1), "+x"(c2), "+x"(c3), "+x"(c4), "+x"(c5), "+x"(c6), "+x"(c7), "+x"(c8),
                     "+x"(c9), "+x"(c10), "+x"(c11));
  }
  return 12.0 * static_cast<double>(iters) / (now() - t0) / 1e9;
}

template <Int8Op A, Int8Op B>
void probe_int8_pair(nlohmann::json& doc) {
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) best = std::max(best, int8_op_rate<A, B>(20'000'000));
  const std::string name = A == B ? int8_op_name(A) : std::string(int8_op_name(A)) + " + " + int8_op_name(B);
  std::printf("| int8 instructions G/s, %s | 1 | %.2f |\n", name.c_str(), best);
  doc["int8_ops_g_per_s"][name] = best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = "bench-probe.json";
  std::vector<int> thread_counts = {1, 2};
  size_t mib = 512;
  std::string file_path;
  bool int8_ops = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) out_path = argv[++i];
    else if (a == "--mib" && i + 1 < argc) mib = std::stoul(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) thread_counts = {std::stoi(argv[++i])};
    else if (a == "--file" && i + 1 < argc) file_path = argv[++i];
    else if (a == "--int8-ops") int8_ops = true;
    else {
      std::printf("usage: bench_probe [--out FILE] [--mib N (buffer, default 512)] [--threads N] [--file F] [--int8-ops]\n");
      return a == "--help" ? 0 : 2;
    }
  }
  const size_t n_words = (mib << 20) / 8;
  HugePageBuffer huge(n_words * 8);
  std::vector<uint64_t> small_pages(n_words);
  auto* huge_words = reinterpret_cast<uint64_t*>(huge.data());
  for (size_t i = 0; i < n_words; ++i) huge_words[i] = small_pages[i] = i;  // touch every page before timing
  nlohmann::json doc = {{"bench", "probe"}, {"physical_cores", physical_core_count()}, {"buffer_mib", mib}};

  std::printf("| probe | threads | value |\n|---|---|---|\n");
  volatile uint64_t sink = 0;
  const uint64_t* buf = huge_words;
  size_t n = n_words;
  // Best of 5 passes over buf [n] with `threads` threads, each summing its share with `sum`.
  auto read_gbs = [&](int threads, uint64_t (*sum)(const uint64_t*, size_t)) {
    ThreadPool pool(threads);
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      std::vector<uint64_t> sums(threads, 0);
      const double t0 = now();
      pool.parallel_for(threads, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const size_t lo = n * t / threads, hi = n * (t + 1) / threads;
          sums[t] = sum(buf + lo, hi - lo);
        }
      });
      best = std::min(best, now() - t0);
      for (auto v : sums) sink = sink + v;
    }
    return n * 8.0 / best / 1e9;
  };
  for (int threads : thread_counts) {
    const double plain = read_gbs(threads, read_sum);
    const double wide = cpu_features().avx2 ? read_gbs(threads, read_sum_avx2) : 0.0;
    const double gbs = std::max(plain, wide);
    std::printf("| DRAM read GB/s, huge pages (plain loop / AVX2 + prefetch) | %d | %.1f / %.1f |\n", threads, plain, wide);
    doc["read_gb_per_s"][std::to_string(threads)] = gbs;  // the roof: the faster method
    doc["read_gb_per_s_plain"][std::to_string(threads)] = plain;
    doc["read_gb_per_s_avx2_prefetch"][std::to_string(threads)] = wide;
  }
  // The same reads (the faster method) from 4 KiB pages and from a file mapping.
  auto best_read = [&](int threads) {
    return std::max(read_gbs(threads, read_sum), cpu_features().avx2 ? read_gbs(threads, read_sum_avx2) : 0.0);
  };
  buf = small_pages.data();
  for (int threads : thread_counts) {
    const double gbs = best_read(threads);
    std::printf("| DRAM read GB/s, 4 KiB pages | %d | %.1f |\n", threads, gbs);
    doc["read_gb_per_s_4k_pages"][std::to_string(threads)] = gbs;
  }
  if (!file_path.empty()) {
    const int fd = open(file_path.c_str(), O_RDONLY);
    struct stat st {};
    if (fd < 0 || fstat(fd, &st) != 0) {
      std::fprintf(stderr, "bench_probe: cannot open %s\n", file_path.c_str());
      return 1;
    }
    void* map = mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
      std::fprintf(stderr, "bench_probe: cannot map %s\n", file_path.c_str());
      return 1;
    }
    buf = static_cast<const uint64_t*>(map);
    n = st.st_size / 8;
    sink = sink + read_sum(buf, n);  // fault every page in first, as a loaded model has
    for (int threads : thread_counts) {
      const double gbs = best_read(threads);
      std::printf("| read GB/s, file mapping (%s) | %d | %.1f |\n", file_path.c_str(), threads, gbs);
      doc["read_gb_per_s_file_mapping"][std::to_string(threads)] = gbs;
    }
    munmap(map, st.st_size);
  }

  if (cpu_features().avx2 && cpu_features().fma) {
    const int64_t iters = 50'000'000;
    for (int threads : thread_counts) {
      ThreadPool pool(threads);
      double best = 1e30;
      for (int rep = 0; rep < 3; ++rep) {
        const double t0 = now();
        pool.parallel_for(threads, [&](int64_t b, int64_t e) {
          for (int64_t t = b; t < e; ++t) sink = sink + static_cast<uint64_t>(fma_loop(iters));
        });
        best = std::min(best, now() - t0);
      }
      // 10 chains × 8 lanes × 2 flops per iteration per thread.
      const double gflops = threads * iters * 10.0 * 8 * 2 / best / 1e9;
      std::printf("| FMA fp32 GFLOP/s | %d | %.1f |\n", threads, gflops);
      doc["fma_gflop_per_s"][std::to_string(threads)] = gflops;
    }
  }
  if (int8_ops && cpu_features().avx2) {
    probe_int8_pair<Int8Op::Maddubs, Int8Op::Maddubs>(doc);
    probe_int8_pair<Int8Op::Madd, Int8Op::Madd>(doc);
    probe_int8_pair<Int8Op::Sign, Int8Op::Sign>(doc);
    probe_int8_pair<Int8Op::Add, Int8Op::Add>(doc);
    probe_int8_pair<Int8Op::Maddubs, Int8Op::Sign>(doc);
    probe_int8_pair<Int8Op::Maddubs, Int8Op::Madd>(doc);
    probe_int8_pair<Int8Op::Maddubs, Int8Op::Add>(doc);
  }
  std::ofstream(out_path) << doc.dump(1) << "\n";
  std::printf("\nwrote %s\n", out_path.c_str());
  return 0;
}
