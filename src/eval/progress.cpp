// Progress line for `billion bench` (see progress.h).
#include "eval/progress.h"

#include <fmt/format.h>

namespace billion::eval {

std::string format_duration(double s) {
  if (s < 0 || s != s) return "?";
  long t = static_cast<long>(s + 0.5);
  if (t < 60) return fmt::format("{}s", t);
  if (t < 3600) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
}

ProgressLine::ProgressLine(std::string task, std::string model, bool terminal, bool quiet, std::FILE* out)
    : task_(std::move(task)), model_(std::move(model)), terminal_(terminal), quiet_(quiet), out_(out),
      start_(Clock::now()), last_draw_(start_) {}

void ProgressLine::update(int done, int total) {
  done_ = done;
  total_ = total;
  if (quiet_) return;
  auto now = Clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  bool last = done >= total;
  if (drawn_ && !last && since < (terminal_ ? 0.2 : 10.0)) return;
  last_draw_ = now;
  drawn_ = true;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  std::string eta = done > 0 ? format_duration(elapsed / done * (total - done)) : "?";
  int width = 24;
  int filled = total > 0 ? width * done / total : 0;
  std::string bar = std::string(filled, '#') + std::string(width - filled, '.');
  std::string line = fmt::format("[{}] {} [{}] {}/{} ETA {}", task_, model_, bar, done, total, eta);
  if (terminal_) fmt::print(out_, "\r{}\x1b[K", line);
  else fmt::print(out_, "{}\n", line);
  std::fflush(out_);
}

void ProgressLine::finish() {
  if (quiet_) return;
  double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  std::string line = fmt::format("[{}] {} {}/{} done in {}", task_, model_, done_, total_, format_duration(elapsed));
  if (terminal_) fmt::print(out_, "\r{}\x1b[K\n", line);
  else fmt::print(out_, "{}\n", line);
  std::fflush(out_);
}

}  // namespace billion::eval
