// What the CPU we run on can do, asked once. The kernel dispatcher (src/kernels/dispatch.cpp) is
// the only caller that chooses code by it; everything else asks the dispatcher.
#pragma once

namespace billion {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
};

// Detected on first call (CPUID through the compiler's builtins, which also check that the OS
// saves the YMM registers), then cached.
const CpuFeatures& cpu_features();

// Number of physical cores this process may run on: distinct core ids among the CPUs in the
// affinity mask (from /sys/devices/system/cpu/cpuN/topology), so SMT siblings count once;
// std::thread::hardware_concurrency() when /sys cannot be read.
int physical_core_count();

}  // namespace billion
