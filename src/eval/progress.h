// The benchmark's progress line: task, model, done/total and ETA. On a terminal it is redrawn in
// place (at most 5 times a second); otherwise a plain line is written every few seconds, fit
// for CI logs. Quiet mode prints nothing.
#pragma once
#include <chrono>
#include <cstdio>
#include <string>

namespace billion::eval {

class ProgressLine {
 public:
  ProgressLine(std::string task, std::string model, bool terminal, bool quiet = false, std::FILE* out = stderr);
  void update(int done, int total);
  void finish();  // ends the line (terminal) and prints the elapsed time

 private:
  using Clock = std::chrono::steady_clock;
  std::string task_, model_;
  bool terminal_, quiet_;
  std::FILE* out_;
  Clock::time_point start_, last_draw_;
  int done_ = 0, total_ = 0;
  bool drawn_ = false;
};

// "1m05s", "42s", "2h03m".
std::string format_duration(double seconds);

}  // namespace billion::eval
