// Reading gzip data (HumanEval's .jsonl.gz, compressed test fixtures) through zlib.
#pragma once
#include <string>
#include <string_view>

namespace billion {

// Decompresses gzip data held in memory; several concatenated members (as `cat a.gz b.gz`
// makes) are decoded one after another, as gzip(1) does. `name` is used in error messages.
std::string gunzip(std::string_view compressed, const std::string& name);

// Reads and decompresses a whole .gz file; errors name the file.
std::string read_gzip_file(const std::string& path);

}  // namespace billion
