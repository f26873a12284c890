// Fetching and verifying the evaluation data sets (see dataset_fetch.h).
//
// Layout below the data dir (the same as ../shared/data, so --data works on either):
//   mmlu/{MANIFEST.sha256, README.txt, dev/, val/, test/, possibly_contaminated_urls.txt}
//   humaneval/{MANIFEST.sha256, HumanEval.jsonl.gz}
//   .downloads/<name>-<url hash>.<ext>[.incomplete]   the download, resumed by the next run
//   .locks/<name>.lock                                 one fetcher per data set at a time
//   .tmp-<name>-*                                      extraction in progress (removed on failure)
// A data set's folder appears only by rename() of a fully verified temporary folder, and its
// MANIFEST.sha256 says which manifest it was verified against.
#include "hub/dataset_fetch.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "hub/download.h"
#include "hub/exit_codes.h"
#include "hub/hub_cache.h"
#include "hub/sha256.h"

namespace billion::hub {

namespace {

// The manifests in src/hub/data_manifests/, turned into string literals by CMake at configure time.
constexpr std::string_view kMmluManifest =
#include "hub/data_manifest_mmlu.inc"
    ;
constexpr std::string_view kHumanEvalManifest =
#include "hub/data_manifest_humaneval.inc"
    ;

fs::path expand_home(const std::string& p) {
  if (!p.empty() && p[0] == '~') return fs::path(env_or_empty("HOME") + p.substr(1));
  return fs::path(p);
}

bool is_lower_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(::getpid()) + "-" + std::to_string(rng() % 1000000000ULL);
}

// flock on a lock file for as long as the object lives: a second `billion bench` started while
// the first is fetching waits, then finds the data ready.
class FileLock {
 public:
  explicit FileLock(const fs::path& path) {
    fs::create_directories(path.parent_path());
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(path.string(), "cannot open the lock file: {}", std::strerror(errno));
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) fail(path.string(), "cannot lock: {}", std::strerror(errno));
    }
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), "cannot read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes a small file under a temporary name and renames it, so readers never see half of it.
void write_file_atomically(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp" + random_suffix();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) fail(tmp.string(), "cannot write");
  }
  fs::rename(tmp, path);
}

std::string describe_problems(const std::vector<ManifestProblem>& problems, size_t max_listed = 5) {
  std::string text;
  for (size_t i = 0; i < problems.size() && i < max_listed; ++i) {
    text += (i ? "; " : "") + problems[i].path + ": " + problems[i].what;
  }
  if (problems.size() > max_listed) text += fmt::format("; and {} more", problems.size() - max_listed);
  return text;
}

// What an HTTP error answer from a data set's server means; `what` names the data set and URL.
[[noreturn]] void throw_data_http_error(const HttpResponse& r, const std::string& what, const std::string& hint) {
  if (is_retryable_status(r.status)) {
    double retry_after = 0;
    if (auto v = r.header("retry-after"); !v.empty()) retry_after = std::atof(v.c_str());
    throw RetryableStatus(what + ": the server answered HTTP " + std::to_string(r.status), r.status, retry_after);
  }
  if (r.status == 404 || r.status == 410) {
    throw Error(what + ": not found on the server (HTTP " + std::to_string(r.status) + "); " + hint, exit_code::kNotFound);
  }
  throw Error(what + ": unexpected HTTP " + std::to_string(r.status) + " from the server; " + hint, exit_code::kNetwork);
}

// Size of the file at `url` from a HEAD (redirects followed), retried like every Hub request.
uint64_t remote_size(const HubConfig& config, const std::string& url, const std::string& what, const std::string& hint) {
  uint64_t size = 0;
  with_retries(config, what, [&] {
    HttpRequest req;
    req.method = "HEAD";
    req.url = url;
    req.follow_redirects = true;
    req.timeouts = config.api_timeouts;
    HttpResponse r = http_request(req, nullptr, 64u << 10);
    if (r.status != 200) throw_data_http_error(r, what, hint);
    std::string length = r.header("content-length");
    if (length.empty() || length.find_first_not_of("0123456789") != std::string::npos) {
      throw Error(what + ": the server did not announce the file's size (no Content-Length in its answer to HEAD); "
                         "a mirror must send one so that downloads can be resumed and checked",
                  exit_code::kNetwork);
    }
    size = std::strtoull(length.c_str(), nullptr, 10);
  });
  return size;
}

// The last component of a URL's path ("data.tar").
std::string url_basename(const std::string& url) {
  std::string base = url.substr(0, url.find_first_of("?#"));
  return base.substr(base.find_last_of('/') + 1);
}

// The download's file name: data set, a hash of the address (a partial file from another mirror
// is never resumed), and the source's own extension.
std::string download_name(const DatasetSpec& spec, const std::string& url) {
  Sha256 h;
  h.update(url.data(), url.size());
  std::string base = url_basename(url);
  std::string ext = base.find('.') == std::string::npos ? "" : base.substr(base.find('.'));
  if (ext.size() > 16 || !is_safe_etag("x" + ext)) ext = ".bin";
  return spec.name + "-" + h.hex_digest().substr(0, 16) + ext;
}

// Removes leftovers of runs that were killed while extracting (called with the lock held, so no
// other process is using them).
void remove_stale_temporaries(const fs::path& data_dir, const std::string& name) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(data_dir, ec)) {
    std::string f = e.path().filename().string();
    if (f.rfind(".tmp-" + name + "-", 0) == 0 || f.rfind(".old-" + name + "-", 0) == 0) fs::remove_all(e.path(), ec);
  }
}

}  // namespace

fs::path billion_home() {
  if (auto v = env_or_empty("BILLION_HOME"); !v.empty()) return expand_home(v);
  if (auto v = env_or_empty("XDG_CACHE_HOME"); !v.empty()) return expand_home(v) / "billion";
  return expand_home("~") / ".cache" / "billion";
}

fs::path default_data_dir() { return billion_home() / "data"; }

std::vector<ManifestEntry> parse_manifest(std::string_view text, const std::string& name) {
  std::vector<ManifestEntry> out;
  std::set<std::string> seen;
  size_t line_no = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = std::min(text.find('\n', start), text.size());
    std::string line(text.substr(start, end - start));
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos || line[0] == '#') continue;
    // sha256sum: 64 hex digits, a space, then ' ' (text mode) or '*' (binary mode), then the path.
    if (line.size() < 67 || line[64] != ' ' || (line[65] != ' ' && line[65] != '*')) {
      fail(name, "line {}: expected \"<sha256 in hex>  <path>\" as sha256sum writes it, got \"{}\"", line_no, line.substr(0, 80));
    }
    ManifestEntry e;
    e.sha256 = line.substr(0, 64);
    std::transform(e.sha256.begin(), e.sha256.end(), e.sha256.begin(), ::tolower);
    if (!is_lower_hex64(e.sha256)) fail(name, "line {}: \"{}\" is not a sha256 in hex", line_no, line.substr(0, 64));
    e.path = line.substr(66);
    if (!is_safe_repo_path(e.path)) {
      fail(name, "line {}: unsafe path \"{}\" (must be relative, '/'-separated, without \"..\")", line_no, e.path);
    }
    if (!seen.insert(e.path).second) fail(name, "line {}: {} is listed twice", line_no, e.path);
    out.push_back(std::move(e));
  }
  if (out.empty()) fail(name, "the manifest lists no files");
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  return out;
}

std::string format_manifest(const std::vector<ManifestEntry>& entries) {
  std::string out;
  for (const auto& e : entries) out += e.sha256 + "  " + e.path + "\n";
  return out;
}

std::string sha256_of_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), "cannot read");
  Sha256 h;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) fail(path.string(), "read error");
  return h.hex_digest();
}

std::vector<ManifestProblem> check_manifest(const fs::path& dir, const std::vector<ManifestEntry>& entries) {
  std::vector<ManifestProblem> problems;
  for (const auto& e : entries) {
    fs::path p = dir / e.path;
    std::error_code ec;
    auto status = fs::symlink_status(p, ec);
    if (ec || !fs::exists(status)) {
      problems.push_back({e.path, "missing"});
    } else if (!fs::is_regular_file(status)) {
      problems.push_back({e.path, "not a regular file"});
    } else if (std::string got = sha256_of_file(p); got != e.sha256) {
      problems.push_back({e.path, "sha256 mismatch: expected " + e.sha256 + ", got " + got});
    }
  }
  return problems;
}

size_t extract_archive(const fs::path& archive_path, const std::string& root, const std::set<std::string>& wanted,
                       const fs::path& dest) {
  // No MMLU file is near this; a larger entry is not the data set and is refused unread.
  constexpr int64_t kMaxEntryBytes = int64_t{1} << 30;
  const std::string where = archive_path.string();
  struct Closer {
    archive* a;
    ~Closer() { archive_read_free(a); }
  } reader{archive_read_new()};
  archive* a = reader.a;
  archive_read_support_filter_all(a);  // plain tar, or .tar.gz/.tar.xz from a mirror
  archive_read_support_format_tar(a);
  if (archive_read_open_filename(a, archive_path.c_str(), 1 << 16) != ARCHIVE_OK) {
    std::string why = archive_error_string(a) ? archive_error_string(a) : "unknown error";
    int err = archive_errno(a);
    if (err == ENOENT || err == EACCES || err == EISDIR) fail(where, "cannot open the archive: {}", why);
    throw Error(where + ": damaged or not a tar archive: " + why, exit_code::kIntegrity);  // e.g. no tar header at all
  }
  size_t written = 0;
  std::vector<char> buf(1 << 16);
  for (;;) {
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(a, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      throw Error(where + ": damaged or not a tar archive: " + (archive_error_string(a) ? archive_error_string(a) : "unknown error"),
                  exit_code::kIntegrity);
    }
    std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    while (name.rfind("./", 0) == 0) name = name.substr(2);
    if (name.rfind(root, 0) != 0) continue;
    name = name.substr(root.size());
    if (archive_entry_filetype(entry) != AE_IFREG || !is_safe_repo_path(name) || !wanted.count(name)) continue;
    if (archive_entry_size(entry) > kMaxEntryBytes) fail(where, "{} is larger than 1 GiB: not the data set expected", name);
    fs::path out_path = dest / name;
    fs::create_directories(out_path.parent_path());
    std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
    if (!out) fail(out_path.string(), "cannot create");
    int64_t total = 0;
    for (;;) {
      la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
      if (n == 0) break;
      if (n < 0) {
        throw Error(where + ": " + name + ": damaged archive: " + (archive_error_string(a) ? archive_error_string(a) : "read error"),
                    exit_code::kIntegrity);
      }
      total += n;
      if (total > kMaxEntryBytes) fail(where, "{} is larger than 1 GiB: not the data set expected", name);
      out.write(buf.data(), n);
    }
    if (!out.flush()) fail(out_path.string(), "write failed (disk full?)");
    ++written;
  }
  return written;
}

const std::vector<DatasetSpec>& known_datasets() {
  static const std::vector<DatasetSpec> specs = {
      // The address given in the README of github.com/hendrycks/test (the MMLU authors).
      {"mmlu", "MMLU", true, "https://people.eecs.berkeley.edu/~hendrycks/data.tar", "BILLION_MMLU_URL",
       "BILLION_MMLU_MANIFEST", "data/", kMmluManifest},
      // data/HumanEval.jsonl.gz of github.com/openai/human-eval (branch master).
      {"humaneval", "HumanEval", false, "https://raw.githubusercontent.com/openai/human-eval/master/data/HumanEval.jsonl.gz",
       "BILLION_HUMANEVAL_URL", "BILLION_HUMANEVAL_MANIFEST", "", kHumanEvalManifest},
  };
  return specs;
}

const DatasetSpec& dataset_spec(const std::string& name) {
  std::string names;
  for (const auto& s : known_datasets()) {
    if (s.name == name) return s;
    names += (names.empty() ? "" : ", ") + s.name;
  }
  fail(name, "unknown data set (known: {})", names);
}

DatasetSource dataset_source(const DatasetSpec& spec, const std::string& url_flag) {
  DatasetSource src;
  src.url = !url_flag.empty() ? url_flag : env_or_empty(spec.url_env.c_str());
  if (src.url.empty()) src.url = spec.default_url;
  if (auto file = env_or_empty(spec.manifest_env.c_str()); !file.empty()) {
    src.manifest = parse_manifest(read_text(file), file);
    src.manifest_origin = file + " (from " + spec.manifest_env + ")";
    src.builtin_manifest = false;
  } else {
    src.manifest = parse_manifest(spec.builtin_manifest, "src/hub/data_manifests/" + spec.name + ".sha256");
    src.manifest_origin = "built in";
  }
  if (!spec.archive && src.manifest.size() != 1) {
    fail(src.manifest_origin, "the {} manifest must list exactly one file (it is downloaded as it is), not {}", spec.title,
         src.manifest.size());
  }
  return src;
}

bool dataset_ready(const fs::path& data_dir, const DatasetSpec& spec, const DatasetSource& source) {
  fs::path dir = data_dir / spec.name;
  std::error_code ec;
  if (!fs::is_regular_file(dir / "MANIFEST.sha256", ec)) return false;
  try {
    if (parse_manifest(read_text(dir / "MANIFEST.sha256"), (dir / "MANIFEST.sha256").string()) != source.manifest) return false;
  } catch (const Error&) {
    return false;
  }
  return std::all_of(source.manifest.begin(), source.manifest.end(),
                     [&](const ManifestEntry& e) { return fs::is_regular_file(dir / e.path, ec); });
}

fs::path ensure_dataset(const HubConfig& config, const DataFetchSettings& settings, const DatasetSpec& spec,
                        const DatasetSource& source) {
  const fs::path& data_dir = settings.data_dir;
  const fs::path final_dir = data_dir / spec.name;
  auto note = [&](const std::string& line) {
    if (settings.progress_mode != Progress::Mode::kQuiet) std::fprintf(settings.out, "%s\n", line.c_str());
  };
  if (dataset_ready(data_dir, spec, source)) return final_dir;
  if (!source.builtin_manifest) note(spec.title + ": verifying against the manifest " + source.manifest_origin +
                                     " instead of the built-in one (a testing and mirror feature)");

  // A folder put there by hand (or by an older version) that verifies is kept as it is.
  std::string old_state;
  if (fs::is_directory(final_dir)) {
    auto problems = check_manifest(final_dir, source.manifest);
    if (problems.empty()) {
      try {
        write_file_atomically(final_dir / "MANIFEST.sha256", format_manifest(source.manifest));
      } catch (const std::exception&) {
        // A read-only copy: still good, it is just hashed again next time.
      }
      size_t n = source.manifest.size();
      note(fmt::format("{}: {} verified ({} file{})", spec.title, final_dir.string(), n, n == 1 ? "" : "s"));
      return final_dir;
    }
    old_state = " (" + final_dir.string() + " exists but does not verify: " + describe_problems(problems, 2) + ")";
  }
  const std::string hint = "set " + spec.url_env + " to a mirror, or pass --data DIR (or BILLION_DATA) with a local copy";
  if (settings.offline) {
    throw Error(spec.title + " is not in " + data_dir.string() + old_state +
                    " and offline mode is on (--offline or HF_HUB_OFFLINE), so it was not downloaded from " + source.url +
                    ". Run without offline mode once, or pass --data DIR (or set BILLION_DATA) to a folder holding " +
                    spec.name + "/",
                exit_code::kNotDownloaded);
  }

  fs::create_directories(data_dir);
  FileLock lock(data_dir / ".locks" / (spec.name + ".lock"));
  if (dataset_ready(data_dir, spec, source)) return final_dir;  // another process finished it meanwhile
  remove_stale_temporaries(data_dir, spec.name);

  // 1. The download: resumed from .downloads/<file>.incomplete, complete when renamed.
  const fs::path downloads = data_dir / ".downloads";
  fs::create_directories(downloads);
  const fs::path download = downloads / download_name(spec, source.url);
  fs::path part = download;
  part += ".incomplete";
  const std::string what = spec.title + " (" + source.url + ")";
  if (!fs::exists(download)) {
    note(spec.title + ": downloading " + source.url + " into " + data_dir.string());
    uint64_t size = 0;
    try {
      size = remote_size(config, source.url, what, hint);
    } catch (const Error& e) {
      if (e.exit_code() != exit_code::kNetwork) throw;
      throw Error(spec.title + ": " + e.what() + "; " + hint, e.exit_code());  // e.g. no route to the authors' server
    }
    std::error_code ec;
    uint64_t partial = fs::exists(part) ? fs::file_size(part, ec) : 0;
    if (partial > size) partial = 0;
    uint64_t needed = size - partial + (spec.archive ? size : 0);  // the archive, then what comes out of it
    uint64_t free = free_bytes(data_dir);
    if (free != UINT64_MAX && free < needed + disk_margin(needed)) {
      throw Error(fmt::format("not enough disk space in {} for {}: {} needed (+ {} margin), {} free. Free some space, or "
                              "set BILLION_HOME (or pass --data DIR with a local copy). Nothing was written.",
                              data_dir.string(), spec.title, format_bytes(needed), format_bytes(disk_margin(needed)),
                              format_bytes(free)),
                  exit_code::kDiskSpace);
    }
    ResumableFetch fetch;
    fetch.what = spec.archive ? what : spec.title + ": " + source.manifest.front().path + " (" + source.url + ")";
    fetch.label = spec.name + "/" + url_basename(source.url);
    fetch.url = source.url;
    fetch.size = size;
    fetch.size_source = "announced by the server's answer to HEAD";
    if (!spec.archive) fetch.sha256 = source.manifest.front().sha256;  // one file: checked while it streams
    fetch.part = part;
    fetch.final_path = download;
    fetch.throw_http_error = [&](const HttpResponse& r) { throw_data_http_error(r, what, hint); };
    Progress progress(settings.progress_mode, settings.out);
    progress.add_total(size - partial);
    try {
      fetch_resumable(config, fetch, progress);
    } catch (...) {
      progress.finish();
      throw;
    }
    progress.finish();
  }

  // 2. Extract (or move the single file) into a temporary folder and verify every file there.
  const fs::path tmp = data_dir / (".tmp-" + spec.name + "-" + random_suffix());
  fs::create_directories(tmp);
  std::vector<ManifestProblem> problems;
  try {
    if (spec.archive) {
      std::set<std::string> wanted;
      for (const auto& e : source.manifest) wanted.insert(e.path);
      extract_archive(download, spec.archive_root, wanted, tmp);
    } else {
      fs::path target = tmp / source.manifest.front().path;
      fs::create_directories(target.parent_path());
      fs::rename(download, target);
    }
    problems = check_manifest(tmp, source.manifest);
  } catch (const Error& e) {
    // A damaged archive cannot become right by resuming it: the next run starts afresh.
    fs::remove_all(tmp);
    fs::remove(download);
    throw Error(std::string(e.what()) + "; the download was deleted, nothing was installed", e.exit_code());
  }
  if (!problems.empty()) {
    fs::remove_all(tmp);
    fs::remove(download);
    throw Error(fmt::format("{}: {} of {} files do not verify against the {} manifest: {}. The download and the extracted "
                            "files were deleted; nothing was installed in {}",
                            what, problems.size(), source.manifest.size(),
                            source.builtin_manifest ? "built-in" : source.manifest_origin, describe_problems(problems),
                            final_dir.string()),
                exit_code::kIntegrity);
  }

  // 3. Into place: the marker first (inside the temporary folder), then one rename.
  write_file_atomically(tmp / "MANIFEST.sha256", format_manifest(source.manifest));
  if (fs::exists(final_dir)) {
    fs::path old = data_dir / (".old-" + spec.name + "-" + random_suffix());
    fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, final_dir);
  }
  std::error_code ec;
  fs::remove(download, ec);  // the extracted files are what is kept
  size_t n = source.manifest.size();
  note(fmt::format("{}: {} file{} verified (sha256) in {}", spec.title, n, n == 1 ? "" : "s", final_dir.string()));
  return final_dir;
}

void ensure_datasets(const std::vector<std::string>& names, const DataFetchSettings& settings) {
  HubConfig config = hub_config_from_env("", "");
  config.token.reset();  // data servers never get the Hugging Face token
  config.offline = config.offline || settings.offline;
  DataFetchSettings s = settings;
  s.offline = config.offline;
  for (const auto& name : names) {
    const DatasetSpec& spec = dataset_spec(name);
    auto it = settings.urls.find(name);
    ensure_dataset(config, s, spec, dataset_source(spec, it == settings.urls.end() ? "" : it->second));
  }
}

}  // namespace billion::hub
