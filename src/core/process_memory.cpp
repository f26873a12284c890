// Reads VmHWM / VmRSS from /proc/self/status and resets the peak through /proc/self/clear_refs
// (see process_memory.h).
#include "core/process_memory.h"

#include <fstream>
#include <sstream>
#include <string>

namespace billion {
namespace {

// The value of a "Key:   1234 kB" line of /proc/self/status, in kB; 0 if absent or unreadable.
uint64_t status_kb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() && line[key.size()] == ':') {
      std::istringstream ss(line.substr(key.size() + 1));
      uint64_t kb = 0;
      ss >> kb;
      return kb;
    }
  }
  return 0;
}

}  // namespace

uint64_t peak_rss_bytes() { return status_kb("VmHWM") * 1024; }
uint64_t current_rss_bytes() { return status_kb("VmRSS") * 1024; }

bool reset_peak_memory() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace billion
