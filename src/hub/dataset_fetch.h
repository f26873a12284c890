// The evaluation data sets (MMLU, HumanEval) on a fresh machine: where they live in the billion
// cache, the sha256 manifests compiled into the program (src/hub/data_manifests/), fetching them
// on first use with the downloader's machinery (resume, retries, progress), extracting MMLU's
// data.tar with libarchive, and verifying every file before the folder becomes visible. The data
// itself is never part of the repository. `billion bench` and `billion data` use this.
#pragma once
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "hub/hub_api.h"
#include "hub/progress.h"

namespace billion::hub {

// $BILLION_HOME, else $XDG_CACHE_HOME/billion, else ~/.cache/billion (as setup.sh and test.sh).
std::filesystem::path billion_home();
// billion_home()/data: holds mmlu/ and humaneval/ in the layout of ../shared/data.
std::filesystem::path default_data_dir();

// One line of a sha256sum-style manifest: "<64 hex>  <relative path>".
struct ManifestEntry {
  std::string sha256;  // lower-case hex
  std::string path;    // '/'-separated, relative, no ".." (is_safe_repo_path)
  bool operator==(const ManifestEntry&) const = default;
};

// Parses sha256sum output ("HASH  path" or "HASH *path"); blank lines and lines starting with
// '#' are ignored. A malformed line, an unsafe path or a path listed twice is an Error naming
// `name` and the line number. Entries come back sorted by path.
std::vector<ManifestEntry> parse_manifest(std::string_view text, const std::string& name);
// The entries as sha256sum writes them (what `sha256sum -c` reads), one per line.
std::string format_manifest(const std::vector<ManifestEntry>& entries);

// sha256 (lower-case hex) of a whole file; an Error naming it when it cannot be read.
std::string sha256_of_file(const std::filesystem::path& path);

// What is wrong with one file of a folder checked against a manifest.
struct ManifestProblem {
  std::string path;
  std::string what;  // "missing", "not a regular file", "sha256 mismatch: expected X, got Y"
};
// Hashes every listed file below `dir`; an empty result means the folder verifies. Files not in
// the manifest are not looked at.
std::vector<ManifestProblem> check_manifest(const std::filesystem::path& dir, const std::vector<ManifestEntry>& entries);

// Extracts the regular files of a tar archive (any compression libarchive reads) whose path,
// below the archive's top folder `root` (e.g. "data/"), is in `wanted`, into `dest`. Everything
// else (other folders, links, devices, unsafe names such as "../x") is skipped, never written.
// Returns how many files were written. A damaged archive is an Error naming it.
size_t extract_archive(const std::filesystem::path& archive, const std::string& root, const std::set<std::string>& wanted,
                       const std::filesystem::path& dest);

// A data set the program knows how to fetch.
struct DatasetSpec {
  std::string name;          // the folder below the data dir: "mmlu", "humaneval"
  std::string title;         // for messages: "MMLU"
  bool archive = false;      // true: a tar to extract; false: one file stored as it is
  std::string default_url;   // the authors' address
  std::string url_env;       // BILLION_MMLU_URL: a mirror
  std::string manifest_env;  // BILLION_MMLU_MANIFEST: another manifest (tests, mirrors of other versions)
  std::string archive_root;  // the archive's folder that becomes the data set's folder ("data/")
  std::string_view builtin_manifest;  // src/hub/data_manifests/<name>.sha256, compiled in
};
const std::vector<DatasetSpec>& known_datasets();
// The spec of "mmlu" or "humaneval"; an Error listing the known names otherwise.
const DatasetSpec& dataset_spec(const std::string& name);

// Where one fetch of a data set comes from and what it must contain.
struct DatasetSource {
  std::string url;
  std::vector<ManifestEntry> manifest;
  std::string manifest_origin;  // "built in", or the override file and the variable naming it
  bool builtin_manifest = true;
};
// The address: `url_flag` if given, else $<url_env>, else the default. The manifest: the file
// named by $<manifest_env> if set (a testing and mirror feature, announced when used), else the
// built-in one.
DatasetSource dataset_source(const DatasetSpec& spec, const std::string& url_flag);

struct DataFetchSettings {
  std::filesystem::path data_dir;             // default_data_dir() for `billion bench`
  bool offline = false;                       // --offline or HF_HUB_OFFLINE: never touch the network
  std::map<std::string, std::string> urls;    // data set name → address given by a flag
  Progress::Mode progress_mode = Progress::Mode::kPlain;
  std::FILE* out = stderr;                    // progress and notes
};

// True when data_dir/<name> holds a copy verified earlier: its MANIFEST.sha256 lists exactly the
// expected entries and every listed file is there. Cheap (no hashing).
bool dataset_ready(const std::filesystem::path& data_dir, const DatasetSpec& spec, const DatasetSource& source);

// Makes data_dir/<name> a verified copy and returns it. Already there: nothing to do (no network).
// A folder without a matching MANIFEST.sha256 whose files all verify is kept. Otherwise, unless
// offline (exit code 9 with what to do): download (resuming a partial file in data_dir/.downloads),
// extract into a temporary folder, verify every file, then rename it into place. A file that
// does not verify is an Error (exit code 7) naming it, and nothing half-made stays behind.
std::filesystem::path ensure_dataset(const HubConfig& config, const DataFetchSettings& settings, const DatasetSpec& spec,
                                     const DatasetSource& source);

// ensure_dataset for each name, with the environment's network settings (HF_HUB_OFFLINE,
// HF_HUB_DOWNLOAD_TIMEOUT, BILLION_HUB_RETRIES, BILLION_HUB_BACKOFF_MS).
void ensure_datasets(const std::vector<std::string>& names, const DataFetchSettings& settings);

}  // namespace billion::hub
