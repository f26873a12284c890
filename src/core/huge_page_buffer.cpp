// HugePageBuffer (see huge_page_buffer.h): an anonymous mapping, over-allocated by 2 MiB so the
// data can start on a huge-page boundary.
#include "core/huge_page_buffer.h"

#include <sys/mman.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "core/error.h"

namespace billion {
namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}

HugePageBuffer::HugePageBuffer(size_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  mapping_bytes_ = bytes + kHugePage;
  mapping_ = mmap(nullptr, mapping_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping_ == MAP_FAILED) {
    mapping_ = nullptr;
    fail("memory", "cannot allocate {} MiB for model weights: {}", bytes >> 20, std::strerror(errno));
  }
  const auto start = reinterpret_cast<uintptr_t>(mapping_);
  data_ = reinterpret_cast<uint8_t*>((start + kHugePage - 1) / kHugePage * kHugePage);
  // A hint: where THP is off or no huge page is free the pages are ordinary ones.
  madvise(data_, bytes, MADV_HUGEPAGE);
  // Fault the pages in now, on several threads: the kernel zeroes each page as it first maps
  // it, and that zeroing was most of a model's load time (perf of an F16 TinyLlama load:
  // clear_page, 83 % of samples, all on the loading thread), so a large buffer shares it out.
  if (bytes >= (size_t{64} << 20)) {
    const unsigned n_threads = std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
    std::vector<std::thread> threads;
    const size_t pages = (bytes + kHugePage - 1) / kHugePage;
    for (unsigned t = 0; t < n_threads; ++t)
      threads.emplace_back([this, t, n_threads, pages, bytes] {
        for (size_t p = pages * t / n_threads; p < pages * (t + 1) / n_threads; ++p)
          data_[std::min(p * kHugePage, bytes - 1)] = 0;
      });
    for (auto& th : threads) th.join();
  }
}

HugePageBuffer::~HugePageBuffer() {
  if (mapping_) munmap(mapping_, mapping_bytes_);
}

}  // namespace billion
