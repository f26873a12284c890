// This process's resident memory as Linux reports it in /proc/self/status: the peak (VmHWM) and
// current (VmRSS) resident set, and a reset of the peak between measurements. One reader for
// every layer that reports memory (eval's bench, train's summary, the bench/ programs).
// Memory-mapped weights count once their pages are touched.
#pragma once
#include <cstdint>

namespace billion {

// Peak resident set size of this process in bytes (VmHWM); 0 if unknown (no /proc).
uint64_t peak_rss_bytes();
// Current resident set size in bytes (VmRSS); 0 if unknown.
uint64_t current_rss_bytes();
// Resets the peak to the current RSS (writes "5" to /proc/self/clear_refs); false if the kernel
// refused (older kernels, some containers), in which case the peak keeps counting from start.
bool reset_peak_memory();

}  // namespace billion
