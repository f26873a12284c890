// Terminal size, display width and the side-by-side columns of `billion chat --compare`.
#include "cli/terminal.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

#include "core/utf8.h"

namespace billion::cli {
namespace {

bool in(uint32_t c, uint32_t lo, uint32_t hi) { return c >= lo && c <= hi; }

int code_point_width(uint32_t c) {
  // Zero width: combining marks, zero-width spaces and joiners, variation selectors.
  if (in(c, 0x0300, 0x036f) || in(c, 0x200b, 0x200f) || in(c, 0x20d0, 0x20ff) || in(c, 0xfe00, 0xfe0f)) return 0;
  // East Asian wide and fullwidth ranges, and the common emoji blocks.
  if (in(c, 0x1100, 0x115f) || (in(c, 0x2e80, 0xa4cf) && c != 0x303f) || in(c, 0xac00, 0xd7a3) || in(c, 0xf900, 0xfaff) ||
      in(c, 0xfe30, 0xfe4f) || in(c, 0xff00, 0xff60) || in(c, 0xffe0, 0xffe6) || in(c, 0x1f300, 0x1f64f) ||
      in(c, 0x1f900, 0x1f9ff) || in(c, 0x20000, 0x3fffd))
    return 2;
  return 1;
}

std::string repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

std::string rtrim(std::string s) {
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

TerminalSize terminal_size(int fd) {
  winsize ws{};
  if (!::isatty(fd) || ::ioctl(fd, TIOCGWINSZ, &ws) != 0) return {};
  return {ws.ws_col, ws.ws_row};
}

int display_width(std::string_view text) {
  int width = 0;
  for (size_t pos = 0; pos < text.size();) width += code_point_width(decode_utf8(text, pos));
  return width;
}

std::string pad_to_width(std::string_view text, int width) {
  std::string out;
  int used = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t start = pos;
    int w = code_point_width(decode_utf8(text, pos));
    if (used + w > width) break;
    out.append(text.substr(start, pos - start));
    used += w;
  }
  out.append(width - used, ' ');
  return out;
}

size_t ColumnWrapper::append(std::string_view text) {
  first_changed_ = rows_.size() - 1;  // the last row is the only one text can still reach
  for (size_t pos = 0; pos < text.size();) {
    size_t start = pos;
    decode_utf8(text, pos);
    push_char(text.substr(start, pos - start));
  }
  return first_changed_;
}

void ColumnWrapper::push_char(std::string_view ch) {
  unsigned char c = static_cast<unsigned char>(ch[0]);
  if (ch == "\n") {
    rows_.emplace_back();
    row_widths_.push_back(0);
    return;
  }
  if (ch == "\t") {
    int spaces = 4 - row_widths_.back() % 4;
    for (int i = 0; i < spaces; ++i) push_char(" ");
    return;
  }
  if (c < 0x20 || c == 0x7f) return;  // never pass the model's control bytes to the terminal
  int w = display_width(ch);
  if (row_widths_.back() + w > width_) {
    std::string& row = rows_.back();
    size_t space = row.rfind(' ');
    std::string carried;
    if (ch != " " && space != std::string::npos && space > 0) {  // move the unfinished word down
      carried = row.substr(space + 1);
      row.resize(space);
      row_widths_.back() = display_width(row);
    }
    rows_.push_back(carried);
    row_widths_.push_back(display_width(carried));
    if (ch == " ") return;  // a space at a break is the break itself
    if (row_widths_.back() + w > width_) {  // a word as wide as the column: cut it
      rows_.emplace_back();
      row_widths_.push_back(0);
    }
  }
  rows_.back().append(ch);
  row_widths_.back() += w;
}

SideBySide::SideBySide(std::FILE* out, int total_columns, int screen_rows, std::string label_a, std::string label_b)
    // One column is left unused at the right edge: writing there makes some terminals wrap.
    : out_(out),
      column_width_(std::max(8, (total_columns - 1 - 3) / 2)),
      screen_rows_(screen_rows),
      label_a_(std::move(label_a)),
      label_b_(std::move(label_b)),
      columns_{ColumnWrapper(column_width_), ColumnWrapper(column_width_)} {}

void SideBySide::start() {
  std::fprintf(out_, "%s\n%s\n", rtrim(pad_to_width(label_a_, column_width_) + " │ " + label_b_).c_str(),
               (repeat("─", column_width_) + "─┼─" + repeat("─", column_width_)).c_str());
  std::fflush(out_);
}

std::string SideBySide::row_text(size_t row) const {
  const auto& a = columns_[0].rows();
  const auto& b = columns_[1].rows();
  std::string left = row < a.size() ? a[row] : "";
  std::string right = row < b.size() ? b[row] : "";
  return rtrim(pad_to_width(left, column_width_) + " │ " + right);
}

void SideBySide::append(int column, std::string_view text) {
  size_t first = columns_[column].append(text);
  redraw_from(first);
}

void SideBySide::redraw_from(size_t row) {
  size_t rows = std::max(columns_[0].rows().size(), columns_[1].rows().size());
  row = std::min(row, drawn_);
  size_t reachable = screen_rows_ > 1 ? static_cast<size_t>(screen_rows_ - 1) : drawn_;
  if (drawn_ - row > reachable) {
    lost_rows_ = true;
    row = drawn_ - reachable;
  }
  std::string out;
  if (drawn_ > row) out += "\x1b[" + std::to_string(drawn_ - row) + "A";
  out += "\r";
  for (size_t i = row; i < rows; ++i) out += row_text(i) + "\x1b[K\n";
  std::fwrite(out.data(), 1, out.size(), out_);
  std::fflush(out_);
  drawn_ = rows;
}

void SideBySide::finish() {
  redraw_from(drawn_);
  if (lost_rows_) {
    std::fprintf(out_, "(the replies grew taller than the window; here they are in full)\n");
    for (const auto& row : plain_rows()) std::fprintf(out_, "%s\n", row.c_str());
  }
  std::fflush(out_);
}

std::vector<std::string> SideBySide::plain_rows() const {
  std::vector<std::string> out;
  out.push_back(rtrim(pad_to_width(label_a_, column_width_) + " │ " + label_b_));
  out.push_back(repeat("─", column_width_) + "─┼─" + repeat("─", column_width_));
  size_t rows = std::max(columns_[0].rows().size(), columns_[1].rows().size());
  for (size_t i = 0; i < rows; ++i) out.push_back(row_text(i));
  return out;
}

}  // namespace billion::cli
