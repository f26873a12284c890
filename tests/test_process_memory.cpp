// core/process_memory: the VmHWM / VmRSS reader sees this process's memory grow when pages are
// touched, and the peak never sits below the current resident set. The test memory is mapped
// and unmapped directly, so no allocator (or ASan's quarantine) keeps it resident after use.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstring>

#include "core/process_memory.h"

using namespace billion;

namespace {

constexpr size_t kBlock = 64u << 20;  // 64 MiB

// Maps kBlock bytes and writes every page, so all of it is resident; munmap returns it.
char* touch_block() {
  void* p = mmap(nullptr, kBlock, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  std::memset(p, 1, kBlock);
  return static_cast<char*>(p);
}

}  // namespace

TEST(ProcessMemory, PeakAndCurrentFollowTouchedPages) {
  const uint64_t before = current_rss_bytes();
  ASSERT_GT(before, 0u) << "/proc/self/status gave no VmRSS";
  ASSERT_GE(peak_rss_bytes(), before);
  char* block = touch_block();
  ASSERT_NE(block, nullptr);
  // The 64 MiB are resident now: RSS and its peak grow by about that much (a quarter's slack
  // for anything the kernel does besides, e.g. transparent huge pages rounding).
  const uint64_t during = current_rss_bytes();
  EXPECT_GE(during, before + kBlock * 3 / 4);
  EXPECT_GE(peak_rss_bytes(), during);
  munmap(block, kBlock);
  EXPECT_LT(current_rss_bytes(), during - kBlock / 2);  // unmapped pages leave the resident set
}

TEST(ProcessMemory, ResetBringsThePeakDownToTheCurrentSet) {
  char* block = touch_block();
  ASSERT_NE(block, nullptr);
  munmap(block, kBlock);
  const uint64_t peak = peak_rss_bytes();
  ASSERT_GE(peak, current_rss_bytes() + kBlock * 3 / 4);  // the unmapped block still counts in the peak
  if (reset_peak_memory()) {
    const uint64_t after = peak_rss_bytes();
    EXPECT_LT(after, peak);
    EXPECT_LE(after, current_rss_bytes() + (8u << 20));  // reset to the current set, give or take
  } else {
    // Kernels that refuse clear_refs (before Linux 4.0, some sandboxes) leave the peak alone,
    // which is what the callers' notes then describe.
    EXPECT_GE(peak_rss_bytes(), peak);
  }
}
