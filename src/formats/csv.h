// RFC 4180 CSV reading (MMLU's data files): quoted fields may hold commas, doubled quotes and
// line breaks; records end with LF, CRLF or a lone CR; the last record may lack a newline.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace billion {

using CsvRecord = std::vector<std::string>;

// Parses CSV text. Field bytes are kept exactly (a CRLF inside quotes stays CRLF). Blank lines
// between records are skipped (they carry no fields). A leading UTF-8 byte-order mark is
// ignored. Errors ("NAME:LINE: ...") cover an unterminated quoted field (reported at the line
// where it opened) and text after a closing quote, since both mean the file is not what we think.
std::vector<CsvRecord> parse_csv(std::string_view text, const std::string& name);

// Reads and parses a CSV file; errors name the file and line.
std::vector<CsvRecord> read_csv_file(const std::string& path);

}  // namespace billion
