// Terminal helpers for `billion chat`: the window size, the display width of UTF-8 text, and
// two labelled columns whose text streams in side by side (compare mode).
//
// The columns are drawn with three control sequences only — carriage return, cursor up (ESC [ n A)
// and erase to end of line (ESC [ K) — so any VT100-style terminal shows them and a test can
// replay the output with a few lines of code.
#pragma once
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace billion::cli {

struct TerminalSize {
  int columns = 0, rows = 0;  // 0 when `fd` is not a terminal
};
TerminalSize terminal_size(int fd);

// Columns `text` occupies on screen: East Asian wide characters count 2, combining marks 0.
int display_width(std::string_view text);

// Wraps streamed text into rows of at most `width` display columns, breaking at the last space
// of a row when there is one (a long word is cut). Tabs become spaces; other control characters
// are dropped.
class ColumnWrapper {
 public:
  explicit ColumnWrapper(int width) : width_(width < 1 ? 1 : width) {}
  // Appends text; returns the index of the first row that changed (rows() may have grown).
  size_t append(std::string_view text);
  const std::vector<std::string>& rows() const { return rows_; }

 private:
  void push_char(std::string_view ch);
  int width_;
  std::vector<std::string> rows_{std::string()};
  std::vector<int> row_widths_{0};
  size_t first_changed_ = 0;
};

// Two columns under a label row, redrawn in place as text arrives: only rows from the first
// changed one down are rewritten. Rows that have scrolled beyond the top of the window cannot be
// rewritten; if that ever happens the whole block is printed once more at the end, so the final
// text is always complete on screen.
class SideBySide {
 public:
  SideBySide(std::FILE* out, int total_columns, int screen_rows, std::string label_a, std::string label_b);
  void start();                                   // prints the labels and a rule
  void append(int column, std::string_view text);  // column 0 or 1
  void finish();                                  // leaves the cursor below the block
  // The block as plain text rows (label row, rule, then the columns), for tests and captures.
  std::vector<std::string> plain_rows() const;

 private:
  std::string row_text(size_t row) const;
  void redraw_from(size_t row);

  std::FILE* out_;
  int column_width_ = 0, screen_rows_ = 0;
  std::string label_a_, label_b_;
  ColumnWrapper columns_[2];
  size_t drawn_ = 0;  // rows of the block on screen; the cursor is at the start of the next line
  bool lost_rows_ = false;
};

// Pads (or cuts) `text` to exactly `width` display columns.
std::string pad_to_width(std::string_view text, int width);

}  // namespace billion::cli
