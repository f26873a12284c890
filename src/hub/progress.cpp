// Progress bars and plain progress lines (see progress.h).
#include "hub/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "hub/hub_cache.h"

namespace billion::hub {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--";
  long s = std::lround(seconds);
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%lds", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  }
  return buf;
}

Progress::Progress(Mode mode, std::FILE* out, double interval_s) : mode_(mode), out_(out), interval_s_(interval_s) {
  if (const char* v = std::getenv("BILLION_PROGRESS_INTERVAL")) {
    double d = std::atof(v);
    if (d > 0) interval_s_ = d;
  }
  last_draw_ = start_;
}

Progress::~Progress() {
  std::lock_guard lock(mutex_);
  if (mode_ == Mode::kTerminal) clear_locked();
}

void Progress::add_total(uint64_t bytes) {
  std::lock_guard lock(mutex_);
  total_ += bytes;
}

int Progress::file_started(const std::string& name, uint64_t size, uint64_t already) {
  std::lock_guard lock(mutex_);
  int id = next_id_++;
  active_[id] = FileState{name, size, already, already};
  if (mode_ == Mode::kPlain) {
    std::fprintf(out_, "%s: downloading %s%s\n", name.c_str(), format_bytes(size).c_str(),
                 already ? (" (resuming at " + format_bytes(already) + ")").c_str() : "");
    std::fflush(out_);
  }
  draw_locked(true);
  return id;
}

void Progress::file_progress(int id, uint64_t done) {
  std::lock_guard lock(mutex_);
  auto it = active_.find(id);
  if (it == active_.end()) return;
  if (done < it->second.already) it->second.already = done;  // restarted from zero
  it->second.done = done;
  draw_locked(false);
}

void Progress::file_finished(int id, const std::string& note) {
  std::lock_guard lock(mutex_);
  auto it = active_.find(id);
  if (it == active_.end()) return;
  finished_bytes_ += it->second.done - it->second.already;
  std::string line = it->second.name + ": done, " + format_bytes(it->second.size) + (note.empty() ? "" : ", " + note);
  active_.erase(it);
  if (mode_ == Mode::kQuiet) return;
  clear_locked();
  std::fprintf(out_, "%s\n", line.c_str());
  draw_locked(true);
}

void Progress::file_failed(int id, const std::string& why) {
  std::lock_guard lock(mutex_);
  auto it = active_.find(id);
  if (it == active_.end()) return;
  finished_bytes_ += it->second.done - it->second.already;
  std::string name = it->second.name;
  active_.erase(it);
  if (mode_ == Mode::kQuiet) return;
  clear_locked();
  std::fprintf(out_, "%s: failed: %s\n", name.c_str(), why.c_str());
  draw_locked(true);
}

void Progress::message(const std::string& line) {
  std::lock_guard lock(mutex_);
  if (mode_ == Mode::kQuiet) return;
  clear_locked();
  std::fprintf(out_, "%s\n", line.c_str());
  draw_locked(true);
}

void Progress::finish() {
  std::lock_guard lock(mutex_);
  if (finished_ || mode_ == Mode::kQuiet) return;
  finished_ = true;
  clear_locked();
  double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  uint64_t bytes = session_bytes_locked();
  if (bytes > 0) {
    std::fprintf(out_, "downloaded %s in %s (%s/s)\n", format_bytes(bytes).c_str(), format_duration(elapsed).c_str(),
                 format_bytes(static_cast<uint64_t>(bytes / std::max(elapsed, 1e-3))).c_str());
  }
  std::fflush(out_);
}

uint64_t Progress::session_bytes_locked() const {
  uint64_t b = finished_bytes_;
  for (const auto& [id, f] : active_) b += f.done - f.already;
  return b;
}

double Progress::rate_locked() {
  // Rate over the last ~5 s, so the ETA follows changes in speed without jumping around.
  auto now = Clock::now();
  uint64_t bytes = session_bytes_locked();
  samples_.emplace_back(now, bytes);
  while (samples_.size() > 2 && now - samples_.front().first > std::chrono::seconds(5)) samples_.pop_front();
  double dt = std::chrono::duration<double>(now - samples_.front().first).count();
  if (dt < 0.2) {
    double all = std::chrono::duration<double>(now - start_).count();
    return all > 0.2 ? bytes / all : 0;
  }
  return (bytes - std::min(bytes, samples_.front().second)) / dt;
}

std::string Progress::bar_line(const std::string& label, uint64_t done, uint64_t size, double rate, int width) const {
  std::string name = label;
  if (name.size() > 40) name = "(...)" + name.substr(name.size() - 35);  // as huggingface_hub
  double frac = size ? std::min(1.0, static_cast<double>(done) / size) : 1.0;
  char stats[128];
  double eta = rate > 0 ? (size - std::min(size, done)) / rate : NAN;
  std::snprintf(stats, sizeof stats, " %3d%% %s/%s %s/s ETA %s", static_cast<int>(frac * 100), format_bytes(done).c_str(),
                format_bytes(size).c_str(), format_bytes(static_cast<uint64_t>(rate)).c_str(), format_duration(eta).c_str());
  int bar_width = width - static_cast<int>(name.size()) - static_cast<int>(std::string(stats).size()) - 4;
  bar_width = std::clamp(bar_width, 0, 40);
  std::string bar;
  if (bar_width >= 5) {
    int filled = static_cast<int>(frac * bar_width);
    bar = " [" + std::string(filled, '#') + std::string(bar_width - filled, '.') + "]";
  }
  std::string line = name + bar + stats;
  if (static_cast<int>(line.size()) > width) line.resize(std::max(0, width));
  return line;
}

void Progress::clear_locked() {
  if (mode_ != Mode::kTerminal || drawn_lines_ == 0) return;
  // Move to the first bar line and erase to the end of the screen.
  std::fprintf(out_, "\x1b[%dA\r\x1b[J", drawn_lines_);
  drawn_lines_ = 0;
}

void Progress::draw_locked(bool force) {
  if (mode_ == Mode::kQuiet || finished_) return;
  auto now = Clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (mode_ == Mode::kPlain) {
    if (since < interval_s_) return;
    last_draw_ = now;
    double rate = rate_locked();
    uint64_t bytes = session_bytes_locked();
    double eta = rate > 0 ? (total_ - std::min(total_, bytes)) / rate : NAN;
    std::fprintf(out_, "progress: %s / %s (%d%%), %s/s, ETA %s\n", format_bytes(bytes).c_str(), format_bytes(total_).c_str(),
                 total_ ? static_cast<int>(100.0 * std::min(bytes, total_) / total_) : 100,
                 format_bytes(static_cast<uint64_t>(rate)).c_str(), format_duration(eta).c_str());
    std::fflush(out_);
    return;
  }
  if (!force && since < 0.1) return;
  last_draw_ = now;
  int width = 80;
  struct winsize ws {};
  if (::ioctl(::fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) width = ws.ws_col - 1;
  double rate = rate_locked();
  clear_locked();
  int lines = 0;
  for (const auto& [id, f] : active_) {
    // A per-file rate would need per-file samples; the share of the total rate is close enough.
    std::fprintf(out_, "%s\n", bar_line(f.name, f.done, f.size, active_.size() ? rate / active_.size() : 0, width).c_str());
    ++lines;
  }
  std::fprintf(out_, "%s\n", bar_line("total", session_bytes_locked(), total_, rate, width).c_str());
  ++lines;
  drawn_lines_ = lines;
  std::fflush(out_);
}

}  // namespace billion::hub
