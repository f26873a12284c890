// CPU feature detection and physical-core counting (see cpu_features.h).
#include "core/cpu_features.h"

#include <sched.h>

#include <fstream>
#include <set>
#include <string>
#include <thread>

namespace billion {

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    // GCC's builtin knows "f16c" only from GCC 11 on; CPUID leaf 1 ECX bit 29 otherwise.
    unsigned eax, ebx, ecx, edx;
    __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(1), "c"(0));
    f.f16c = (ecx >> 29) & 1u;
#endif
    return f;
  }();
  return features;
}

int physical_core_count() {
  int fallback = static_cast<int>(std::thread::hardware_concurrency());
  if (fallback < 1) fallback = 1;
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof(mask), &mask) != 0) return fallback;
  // A core is named by (package, core id); SMT siblings share it.
  std::set<std::pair<std::string, std::string>> cores;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &mask)) continue;
    std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::ifstream core_file(base + "core_id"), package_file(base + "physical_package_id");
    std::string core, package;
    if (!(core_file >> core) || !(package_file >> package)) return fallback;
    cores.emplace(package, core);
  }
  return cores.empty() ? fallback : static_cast<int>(cores.size());
}

}  // namespace billion
