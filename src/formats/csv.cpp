// RFC 4180 CSV parser: a single pass over the bytes with an explicit state, so quoted line
// breaks and CRLF need no look-behind and line numbers for errors come for free.
#include "formats/csv.h"

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/utf8.h"

namespace billion {

std::vector<CsvRecord> parse_csv(std::string_view text, const std::string& name) {
  if (text.starts_with("\xef\xbb\xbf")) text.remove_prefix(3);
  std::vector<CsvRecord> records;
  CsvRecord record;
  std::string field;
  size_t line = 1;          // physical line of `pos`, 1-based
  bool in_record = false;   // something (even an empty field before a comma) was seen
  size_t pos = 0;
  const size_t n = text.size();

  auto end_record = [&] {
    record.push_back(std::move(field));
    field.clear();
    records.push_back(std::move(record));
    record.clear();
    in_record = false;
  };
  // Consumes a line break at `pos` (LF, CRLF or lone CR); returns false if there is none.
  auto take_newline = [&]() -> bool {
    if (text[pos] == '\n') {
      ++pos;
    } else if (text[pos] == '\r') {
      pos += (pos + 1 < n && text[pos + 1] == '\n') ? 2 : 1;
    } else {
      return false;
    }
    ++line;
    return true;
  };

  while (pos < n) {
    char c = text[pos];
    if (c == '"' && field.empty()) {
      // A quoted field: runs to the matching quote; "" stands for one quote.
      const size_t open_line = line;
      ++pos;
      for (;;) {
        if (pos >= n) fail(name + ":" + std::to_string(open_line), "quoted field is never closed");
        char q = text[pos];
        if (q == '"') {
          if (pos + 1 < n && text[pos + 1] == '"') {
            field += '"';
            pos += 2;
            continue;
          }
          ++pos;
          break;
        }
        if (q == '\n' || (q == '\r' && !(pos + 1 < n && text[pos + 1] == '\n'))) ++line;
        field += q;
        ++pos;
      }
      in_record = true;
      // After the closing quote only a separator, a line break or the end may follow.
      if (pos < n && text[pos] == ',') {
        record.push_back(std::move(field));
        field.clear();
        ++pos;
      } else if (pos >= n || take_newline()) {
        end_record();
      } else {
        fail(name + ":" + std::to_string(line), "unexpected {} after a closing quote",
             printable(text.substr(pos, 1)));
      }
      continue;
    }
    if (c == ',') {
      record.push_back(std::move(field));
      field.clear();
      in_record = true;
      ++pos;
      continue;
    }
    if (take_newline()) {
      if (in_record || !field.empty()) end_record();
      continue;
    }
    // An unquoted field: bytes up to the next separator or line break. A quote inside it is
    // kept literally (as Python's csv module does), since it cannot start a quoted field here.
    field += c;
    in_record = true;
    ++pos;
  }
  if (in_record || !field.empty()) end_record();
  return records;
}

std::vector<CsvRecord> read_csv_file(const std::string& path) {
  return parse_csv(read_text_file(path), path);
}

}  // namespace billion
