// Unit tests of the data set fetcher's offline parts (src/hub/dataset_fetch.h): manifest parsing
// and checking, the built-in manifests against ../shared/data, tar extraction (only wanted
// regular files, nothing outside the destination), the cache folder's environment variables,
// mirror and manifest overrides, adoption of a hand-placed folder and the offline error. The
// network path is tested end to end in tests/py/test_data_fetch.py.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>

#include "core/error.h"
#include "hub/dataset_fetch.h"
#include "hub/exit_codes.h"

namespace {

namespace fs = std::filesystem;
using namespace billion::hub;

const std::string kShared = BILLION_SHARED_DIR;
// sha256("abc") and sha256("") for hand-made manifests.
const std::string kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// Sets environment variables for one test and restores them afterwards.
class ScopedEnv {
 public:
  ~ScopedEnv() {
    for (auto& [name, old] : saved_) old ? ::setenv(name.c_str(), old->c_str(), 1) : ::unsetenv(name.c_str());
  }
  void set(const std::string& name, const std::string& value) {
    remember(name);
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  void unset(const std::string& name) {
    remember(name);
    ::unsetenv(name.c_str());
  }

 private:
  void remember(const std::string& name) {
    for (auto& [n, v] : saved_) {
      if (n == name) return;
    }
    const char* v = std::getenv(name.c_str());
    saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("billion_data_test_" + std::to_string(std::random_device{}()));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A ustar archive written with libarchive: (name, content) regular files, and (name, target) symlinks.
void write_tar(const fs::path& path, const std::vector<std::pair<std::string, std::string>>& files,
               const std::vector<std::pair<std::string, std::string>>& symlinks = {}) {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const auto& [name, content] : files) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    archive_write_header(a, e);
    archive_write_data(a, content.data(), content.size());
    archive_entry_free(e);
  }
  for (const auto& [name, target] : symlinks) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFLNK);
    archive_entry_set_symlink(e, target.c_str());
    archive_entry_set_perm(e, 0777);
    archive_write_header(a, e);
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
}

template <typename F>
std::string error_of(F&& f, int* exit_code = nullptr) {
  try {
    f();
  } catch (const billion::Error& e) {
    if (exit_code) *exit_code = e.exit_code();
    return e.what();
  }
  return "";
}

TEST(DatasetManifest, ParsesSha256sumOutput) {
  std::string text = "# a comment\n\n" + kAbc + "  dev/b.csv\r\n" + std::string(64, 'E') + " *README.txt\n" + kEmpty + "  a b.txt";
  auto entries = parse_manifest(text, "m.sha256");
  ASSERT_EQ(entries.size(), 3u);
  // Sorted by path, hex lower-cased, CR and the binary-mode '*' removed, spaces inside names kept.
  EXPECT_EQ(entries[0], (ManifestEntry{std::string(64, 'e'), "README.txt"}));
  EXPECT_EQ(entries[1], (ManifestEntry{kEmpty, "a b.txt"}));
  EXPECT_EQ(entries[2], (ManifestEntry{kAbc, "dev/b.csv"}));
  EXPECT_EQ(parse_manifest(format_manifest(entries), "again"), entries);
  EXPECT_EQ(format_manifest({entries[2]}), kAbc + "  dev/b.csv\n");
}

TEST(DatasetManifest, RejectsBadLinesNamingManifestAndLine) {
  std::string msg = error_of([&] { parse_manifest(kAbc + "  ok.txt\nnot a manifest line at all, really not\n", "x.sha256"); });
  EXPECT_NE(msg.find("x.sha256: line 2"), std::string::npos) << msg;
  msg = error_of([&] { parse_manifest(std::string(63, 'a') + "g  f.txt\n", "x.sha256"); });
  EXPECT_NE(msg.find("not a sha256"), std::string::npos) << msg;
  for (const char* bad : {"../evil", "/etc/passwd", "a//b", "a/./b", "dir/"}) {
    msg = error_of([&] { parse_manifest(kAbc + "  " + bad + "\n", "x.sha256"); });
    EXPECT_NE(msg.find("unsafe path"), std::string::npos) << bad << ": " << msg;
  }
  msg = error_of([&] { parse_manifest(kAbc + "  a\n" + kEmpty + "  a\n", "x.sha256"); });
  EXPECT_NE(msg.find("line 2: a is listed twice"), std::string::npos) << msg;
  msg = error_of([&] { parse_manifest("# only a comment\n", "x.sha256"); });
  EXPECT_NE(msg.find("lists no files"), std::string::npos) << msg;
}

TEST(DatasetManifest, BuiltInManifestsAndAddresses) {
  ScopedEnv env;
  for (const char* v : {"BILLION_MMLU_URL", "BILLION_MMLU_MANIFEST", "BILLION_HUMANEVAL_URL", "BILLION_HUMANEVAL_MANIFEST"}) env.unset(v);
  DatasetSource mmlu = dataset_source(dataset_spec("mmlu"), "");
  EXPECT_TRUE(mmlu.builtin_manifest);
  EXPECT_EQ(mmlu.url, "https://people.eecs.berkeley.edu/~hendrycks/data.tar");
  // 57 subjects × dev/val/test, README.txt and possibly_contaminated_urls.txt.
  EXPECT_EQ(mmlu.manifest.size(), 57u * 3 + 2);
  DatasetSource he = dataset_source(dataset_spec("humaneval"), "");
  EXPECT_EQ(he.url, "https://raw.githubusercontent.com/openai/human-eval/master/data/HumanEval.jsonl.gz");
  ASSERT_EQ(he.manifest.size(), 1u);
  EXPECT_EQ(he.manifest[0].path, "HumanEval.jsonl.gz");
  EXPECT_NE(error_of([] { dataset_spec("gsm8k"); }).find("known: mmlu, humaneval"), std::string::npos);
}

// The committed hashes are those of the shared copy the tests read: a fetched copy is the same data.
TEST(DatasetManifest, BuiltInManifestsVerifySharedData) {
  for (const char* name : {"mmlu", "humaneval"}) {
    DatasetSource src = dataset_source(dataset_spec(name), "");
    auto problems = check_manifest(fs::path(kShared) / "data" / name, src.manifest);
    EXPECT_TRUE(problems.empty()) << name << ": " << (problems.empty() ? "" : problems[0].path + ": " + problems[0].what);
  }
}

TEST(DatasetManifest, CheckFindsMissingChangedAndNonRegularFiles) {
  TempDir t;
  write(t.path() / "good.txt", "abc");
  write(t.path() / "changed.txt", "abd");
  fs::create_directories(t.path() / "dir.txt");
  std::vector<ManifestEntry> m = {{kAbc, "good.txt"}, {kAbc, "changed.txt"}, {kAbc, "missing.txt"}, {kAbc, "dir.txt"}};
  auto problems = check_manifest(t.path(), m);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0].path, "changed.txt");
  EXPECT_NE(problems[0].what.find("sha256 mismatch: expected " + kAbc), std::string::npos);
  EXPECT_EQ(problems[1].path, "missing.txt");
  EXPECT_EQ(problems[1].what, "missing");
  EXPECT_EQ(problems[2].path, "dir.txt");
  EXPECT_EQ(problems[2].what, "not a regular file");
  EXPECT_EQ(sha256_of_file(t.path() / "good.txt"), kAbc);
}

TEST(DatasetArchive, ExtractsOnlyWantedRegularFilesInsideDestination) {
  TempDir t;
  fs::path tar = t.path() / "data.tar";
  write_tar(tar,
            {{"data/README.txt", "abc"},
             {"./data/dev/a_dev.csv", "1,2\n"},
             {"data/auxiliary_train/big.csv", "not wanted"},
             {"other/README.txt", "outside the root"},
             {"data/../escape.txt", "must never be written"}},
            {{"data/test/a_test.csv", "/etc/passwd"}});
  fs::path dest = t.path() / "out";
  fs::create_directories(dest);
  std::set<std::string> wanted = {"README.txt", "dev/a_dev.csv", "test/a_test.csv", "../escape.txt"};
  EXPECT_EQ(extract_archive(tar, "data/", wanted, dest), 2u);
  EXPECT_EQ(read(dest / "README.txt"), "abc");
  EXPECT_EQ(read(dest / "dev/a_dev.csv"), "1,2\n");
  EXPECT_FALSE(fs::exists(dest / "auxiliary_train"));
  EXPECT_FALSE(fs::exists(fs::symlink_status(dest / "test/a_test.csv")));  // a link is never created
  EXPECT_FALSE(fs::exists(t.path() / "escape.txt"));
  EXPECT_FALSE(fs::exists(dest / "escape.txt"));
}

TEST(DatasetArchive, DamagedArchiveIsAnIntegrityErrorNamingIt) {
  TempDir t;
  fs::path bad = t.path() / "data.tar";
  write(bad, std::string(4096, 'x'));
  int code = 0;
  std::string msg = error_of([&] { extract_archive(bad, "data/", {"README.txt"}, t.path()); }, &code);
  EXPECT_NE(msg.find(bad.string()), std::string::npos) << msg;
  EXPECT_EQ(code, exit_code::kIntegrity) << msg;
  // A tar cut in the middle of a file.
  fs::path good = t.path() / "good.tar";
  write_tar(good, {{"data/README.txt", std::string(100000, 'r')}});
  std::string bytes = read(good);
  write(t.path() / "cut.tar", bytes.substr(0, 40000));
  msg = error_of([&] { extract_archive(t.path() / "cut.tar", "data/", {"README.txt"}, t.path() / "o"); }, &code);
  EXPECT_NE(msg.find("cut.tar"), std::string::npos) << msg;
  EXPECT_EQ(code, exit_code::kIntegrity) << msg;
}

TEST(DatasetCache, HomeFollowsTheEnvironment) {
  ScopedEnv env;
  env.set("HOME", "/home/u");
  env.unset("BILLION_HOME");
  env.unset("XDG_CACHE_HOME");
  EXPECT_EQ(default_data_dir(), fs::path("/home/u/.cache/billion/data"));
  env.set("XDG_CACHE_HOME", "/xdg");
  EXPECT_EQ(billion_home(), fs::path("/xdg/billion"));
  env.set("BILLION_HOME", "~/bh");
  EXPECT_EQ(default_data_dir(), fs::path("/home/u/bh/data"));
}

TEST(DatasetCache, MirrorAndManifestOverrides) {
  TempDir t;
  ScopedEnv env;
  write(t.path() / "m.sha256", kAbc + "  README.txt\n");
  env.set("BILLION_MMLU_URL", "http://mirror.example/data.tar");
  env.set("BILLION_MMLU_MANIFEST", (t.path() / "m.sha256").string());
  DatasetSource s = dataset_source(dataset_spec("mmlu"), "");
  EXPECT_EQ(s.url, "http://mirror.example/data.tar");
  EXPECT_FALSE(s.builtin_manifest);
  EXPECT_NE(s.manifest_origin.find("BILLION_MMLU_MANIFEST"), std::string::npos);
  ASSERT_EQ(s.manifest.size(), 1u);
  EXPECT_EQ(dataset_source(dataset_spec("mmlu"), "http://flag.example/x.tar").url, "http://flag.example/x.tar");
  // HumanEval is stored as one file, so its manifest must name exactly one.
  write(t.path() / "two.sha256", kAbc + "  a\n" + kAbc + "  b\n");
  env.set("BILLION_HUMANEVAL_MANIFEST", (t.path() / "two.sha256").string());
  EXPECT_NE(error_of([] { dataset_source(dataset_spec("humaneval"), ""); }).find("exactly one file"), std::string::npos);
}

TEST(DatasetCache, AdoptsVerifiedFolderAndRefusesOfflineFetch) {
  TempDir t;
  ScopedEnv env;
  write(t.path() / "m.sha256", kAbc + "  README.txt\n" + kEmpty + "  dev/x_dev.csv\n");
  env.set("BILLION_MMLU_MANIFEST", (t.path() / "m.sha256").string());
  env.set("BILLION_MMLU_URL", "http://127.0.0.1:1/never-contacted.tar");
  const DatasetSpec& spec = dataset_spec("mmlu");
  DatasetSource src = dataset_source(spec, "");
  DataFetchSettings s;
  s.data_dir = t.path() / "data";
  s.offline = true;
  s.progress_mode = Progress::Mode::kQuiet;
  HubConfig config;
  config.offline = true;

  // Nothing there and offline: exit code 9 naming the folder and what to do.
  int code = 0;
  std::string msg = error_of([&] { ensure_dataset(config, s, spec, src); }, &code);
  EXPECT_EQ(code, exit_code::kNotDownloaded) << msg;
  EXPECT_NE(msg.find("offline"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--data"), std::string::npos) << msg;
  EXPECT_FALSE(dataset_ready(s.data_dir, spec, src));

  // A copy put there by hand that verifies is kept and marked (no network needed).
  write(s.data_dir / "mmlu/README.txt", "abc");
  write(s.data_dir / "mmlu/dev/x_dev.csv", "");
  EXPECT_EQ(ensure_dataset(config, s, spec, src), s.data_dir / "mmlu");
  EXPECT_EQ(read(s.data_dir / "mmlu/MANIFEST.sha256"), format_manifest(src.manifest));
  EXPECT_TRUE(dataset_ready(s.data_dir, spec, src));

  // The cheap check notices a lost file; a hand-placed copy (no marker) that does not verify is
  // not accepted.
  fs::remove(s.data_dir / "mmlu/dev/x_dev.csv");
  EXPECT_FALSE(dataset_ready(s.data_dir, spec, src));
  write(s.data_dir / "mmlu/dev/x_dev.csv", "changed");
  fs::remove(s.data_dir / "mmlu/MANIFEST.sha256");
  msg = error_of([&] { ensure_dataset(config, s, spec, src); }, &code);
  EXPECT_EQ(code, exit_code::kNotDownloaded) << msg;
  EXPECT_NE(msg.find("dev/x_dev.csv: sha256 mismatch"), std::string::npos) << msg;
}

}  // namespace
