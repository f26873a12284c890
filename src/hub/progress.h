// Download progress for several files at once. On a terminal: one bar per active file plus a
// total bar (bytes, rate, ETA), redrawn in place at most 10 times a second. Otherwise: a line
// when a file starts or ends and a total line every few seconds, fit for logs. Quiet: nothing.
// Thread-safe: worker threads report, whichever thread reports draws.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <string>

namespace billion::hub {

class Progress {
 public:
  enum class Mode { kTerminal, kPlain, kQuiet };
  // interval_s: seconds between plain-mode total lines (BILLION_PROGRESS_INTERVAL overrides).
  Progress(Mode mode, std::FILE* out, double interval_s = 5.0);
  ~Progress();

  // Adds to the total that the total bar measures against (bytes still to download).
  void add_total(uint64_t bytes);
  // A file starts; `already` bytes were on disk before (a resumed download).
  int file_started(const std::string& name, uint64_t size, uint64_t already);
  // Bytes written so far for the file (absolute, not a delta); may go down after a restart.
  void file_progress(int id, uint64_t done);
  void file_finished(int id, const std::string& note);
  void file_failed(int id, const std::string& why);
  // A line of text (a retry notice) printed above the bars.
  void message(const std::string& line);
  // Final draw: clears the bars and prints the total.
  void finish();

 private:
  struct FileState {
    std::string name;
    uint64_t size = 0;
    uint64_t already = 0;
    uint64_t done = 0;
  };
  using Clock = std::chrono::steady_clock;
  void draw_locked(bool force);
  void clear_locked();
  std::string bar_line(const std::string& name, uint64_t done, uint64_t size, double rate, int width) const;
  double rate_locked();
  uint64_t session_bytes_locked() const;

  Mode mode_;
  std::FILE* out_;
  double interval_s_;
  std::mutex mutex_;
  std::map<int, FileState> active_;
  int next_id_ = 0;
  uint64_t total_ = 0;           // bytes to download this run
  uint64_t finished_bytes_ = 0;  // downloaded this run by files no longer active
  int drawn_lines_ = 0;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_{};
  std::deque<std::pair<Clock::time_point, uint64_t>> samples_;  // for a windowed rate
  bool finished_ = false;
};

// "1m05s", "3h02m", "--" for unknown.
std::string format_duration(double seconds);

}  // namespace billion::hub
