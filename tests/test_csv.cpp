// RFC 4180 CSV reader (src/formats/csv.h) and gzip reading (src/core/gzip.h): hand-made edge
// cases, then every MMLU file in ../shared must parse to the published row counts with six
// fields per row (those files mix CRLF and LF, quote line breaks and often lack a final newline).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/gzip.h"
#include "core/mapped_file.h"
#include "formats/csv.h"

using namespace billion;

namespace {

using Rows = std::vector<CsvRecord>;

TEST(Csv, PlainRecordsAndLineEndings) {
  EXPECT_EQ(parse_csv("a,b,c\nd,e,f\n", "t"), (Rows{{"a", "b", "c"}, {"d", "e", "f"}}));
  EXPECT_EQ(parse_csv("a,b\r\nc,d\r\n", "t"), (Rows{{"a", "b"}, {"c", "d"}}));
  EXPECT_EQ(parse_csv("a,b\rc,d", "t"), (Rows{{"a", "b"}, {"c", "d"}}));  // lone CR
  EXPECT_EQ(parse_csv("a,b\nc,d", "t"), (Rows{{"a", "b"}, {"c", "d"}}));  // no final newline
  EXPECT_EQ(parse_csv("", "t"), Rows{});
  EXPECT_EQ(parse_csv("a\n\n\nb\n", "t"), (Rows{{"a"}, {"b"}}));  // blank lines skipped
}

TEST(Csv, EmptyFields) {
  EXPECT_EQ(parse_csv(",\n", "t"), (Rows{{"", ""}}));
  EXPECT_EQ(parse_csv("a,,b,\n", "t"), (Rows{{"a", "", "b", ""}}));
  EXPECT_EQ(parse_csv("\"\",x", "t"), (Rows{{"", "x"}}));
}

TEST(Csv, QuotedFields) {
  EXPECT_EQ(parse_csv("\"a,b\",c\n", "t"), (Rows{{"a,b", "c"}}));
  EXPECT_EQ(parse_csv("\"say \"\"hi\"\"\",x\n", "t"), (Rows{{"say \"hi\"", "x"}}));
  EXPECT_EQ(parse_csv("\"line1\nline2\",x\n", "t"), (Rows{{"line1\nline2", "x"}}));
  EXPECT_EQ(parse_csv("\"crlf\r\ninside\",x\r\n", "t"), (Rows{{"crlf\r\ninside", "x"}}));
  EXPECT_EQ(parse_csv("x,\"last\"", "t"), (Rows{{"x", "last"}}));
  EXPECT_EQ(parse_csv("a\"b,c\n", "t"), (Rows{{"a\"b", "c"}}));  // quote inside unquoted field
  EXPECT_EQ(parse_csv("\xef\xbb\xbf" "a,b\n", "t"), (Rows{{"a", "b"}}));  // BOM dropped
  EXPECT_EQ(parse_csv("caf\xc3\xa9,\xe4\xb8\xad\n", "t"), (Rows{{"caf\xc3\xa9", "\xe4\xb8\xad"}}));
}

TEST(Csv, ErrorsNameFileAndLine) {
  try {
    parse_csv("a,b\nc,\"open\nstill open\n", "data.csv");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.csv:2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("never closed"), std::string::npos) << e.what();
  }
  try {
    parse_csv("a,b\n\"x\"y,z\n", "data.csv");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.csv:2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("after a closing quote"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_csv_file("/nonexistent/file.csv"), Error);
}

TEST(Csv, EveryMmluFileParses) {
  const std::string root = std::string(BILLION_SHARED_DIR) + "/data/mmlu";
  const std::map<std::string, size_t> expected_rows = {{"dev", 285}, {"val", 1531}, {"test", 14042}};
  for (const auto& [split, expected] : expected_rows) {
    size_t rows = 0, files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(root + "/" + split)) {
      if (entry.path().extension() != ".csv") continue;
      ++files;
      for (const auto& r : read_csv_file(entry.path().string())) {
        ASSERT_EQ(r.size(), 6u) << entry.path() << " row " << rows;
        ASSERT_TRUE(r[5] == "A" || r[5] == "B" || r[5] == "C" || r[5] == "D") << entry.path();
        ++rows;
      }
    }
    EXPECT_EQ(files, 57u) << split;
    EXPECT_EQ(rows, expected) << split;
  }
}

TEST(Gzip, HumanEvalDecompresses) {
  const auto text = read_gzip_file(std::string(BILLION_SHARED_DIR) + "/data/humaneval/HumanEval.jsonl.gz");
  EXPECT_EQ(text.size(), 214438u);  // data/README.md
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 164);
}

TEST(Gzip, RejectsBadInput) {
  EXPECT_THROW(gunzip("plain text, not gzip at all", "x"), Error);
  const auto good = read_text_file(std::string(BILLION_SHARED_DIR) + "/data/humaneval/HumanEval.jsonl.gz");
  EXPECT_THROW(gunzip(std::string_view(good).substr(0, good.size() / 2), "half.gz"), Error);
  // Two members back to back decode as their concatenation, like gzip -d.
  EXPECT_EQ(gunzip(good + good, "twice.gz").size(), 2 * 214438u);
}

}  // namespace
