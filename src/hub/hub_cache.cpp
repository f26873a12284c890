// Cache paths, refs and snapshot symlinks in the huggingface_hub layout (see hub_cache.h).
#include "hub/hub_cache.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"

namespace billion::hub {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool env_truthy(const char* name) {
  std::string v = env_or_empty(name);
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return v == "1" || v == "on" || v == "yes" || v == "true";
}

namespace {
// Expands a leading "~" (huggingface_hub calls os.path.expanduser on these variables).
fs::path expand_user(const std::string& p) {
  if (!p.empty() && p[0] == '~') {
    std::string home = env_or_empty("HOME");
    return fs::path(home + p.substr(1));
  }
  return fs::path(p);
}
}  // namespace

fs::path hf_home() {
  if (auto v = env_or_empty("HF_HOME"); !v.empty()) return expand_user(v);
  if (auto v = env_or_empty("XDG_CACHE_HOME"); !v.empty()) return expand_user(v) / "huggingface";
  return expand_user("~") / ".cache" / "huggingface";
}

fs::path default_cache_dir() {
  if (auto v = env_or_empty("HF_HUB_CACHE"); !v.empty()) return expand_user(v);
  if (auto v = env_or_empty("HUGGINGFACE_HUB_CACHE"); !v.empty()) return expand_user(v);
  return hf_home() / "hub";
}

std::string repo_folder_name(const std::string& repo_id) {
  std::string out = "models";
  std::stringstream parts(repo_id);
  std::string part;
  while (std::getline(parts, part, '/')) out += "--" + part;
  return out;
}

std::string normalize_etag(const std::string& etag) {
  std::string e = etag;
  if (e.rfind("W/", 0) == 0) e = e.substr(2);
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

static bool all_hex(const std::string& s, bool lower_only) {
  for (char c : s) {
    bool digit = c >= '0' && c <= '9';
    bool lo = c >= 'a' && c <= 'f';
    bool up = c >= 'A' && c <= 'F';
    if (!(digit || lo || (!lower_only && up))) return false;
  }
  return true;
}

bool is_commit_hash(const std::string& text) { return text.size() == 40 && all_hex(text, true); }
bool is_sha256_hex(const std::string& text) { return text.size() == 64 && all_hex(text, false); }

bool is_safe_etag(const std::string& etag) {
  if (etag.empty() || etag.size() > 128 || etag == "." || etag == "..") return false;
  for (unsigned char c : etag) {
    if (!(std::isalnum(c) || c == '.' || c == '_' || c == '-')) return false;
  }
  return true;
}

bool is_safe_repo_path(const std::string& path) {
  if (path.empty() || path.front() == '/' || path.size() > 1024) return false;
  if (path.find('\\') != std::string::npos || path.find('\0') != std::string::npos) return false;
  std::stringstream parts(path);
  std::string part;
  size_t count = 0;
  while (std::getline(parts, part, '/')) {
    ++count;
    if (part.empty() || part == "." || part == "..") return false;
  }
  return count > 0 && path.back() != '/';
}

std::string relative_blob_target(const std::string& file, const std::string& etag) {
  // snapshots/<commit>/ is two levels below the repo folder; each '/' in file adds one.
  std::string up = "../../";
  for (char c : file) {
    if (c == '/') up += "../";
  }
  return up + "blobs/" + etag;
}

RepoCache::RepoCache(fs::path cache_dir, std::string repo_id) : cache_dir_(std::move(cache_dir)), repo_id_(std::move(repo_id)) {}

std::optional<std::string> RepoCache::read_ref(const std::string& revision) const {
  std::ifstream in(ref(revision));
  if (!in) return std::nullopt;
  std::string commit;
  std::getline(in, commit);
  while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
  if (!is_commit_hash(commit)) return std::nullopt;
  return commit;
}

namespace {
std::string temp_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return ".tmp" + std::to_string(::getpid()) + "_" + std::to_string(rng() % 1000000000ULL);
}
}  // namespace

void RepoCache::write_ref(const std::string& revision, const std::string& commit) const {
  fs::path path = ref(revision);
  if (read_ref(revision) == commit) return;  // no rewrite: readers never see a half-written ref
  fs::create_directories(path.parent_path());
  fs::path tmp = path;
  tmp += temp_suffix();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << commit;
    if (!out.flush()) throw Error(tmp.string() + ": cannot write the ref file");
  }
  fs::rename(tmp, path);
}

std::optional<fs::path> RepoCache::find_snapshot(const std::string& revision) const {
  std::string commit = revision;
  if (!is_commit_hash(revision)) {
    auto r = read_ref(revision);
    if (!r) return std::nullopt;
    commit = *r;
  }
  fs::path dir = snapshot(commit);
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return dir;
  return std::nullopt;
}

void RepoCache::link_pointer(const std::string& commit, const std::string& file, const std::string& etag) const {
  fs::path link = pointer(commit, file);
  fs::create_directories(link.parent_path());
  fs::path tmp = link;
  tmp += temp_suffix();
  fs::create_symlink(relative_blob_target(file, etag), tmp);
  std::error_code ec;
  fs::rename(tmp, link, ec);  // atomic replace of any stale entry
  if (ec) {
    fs::remove(tmp);
    throw Error(link.string() + ": cannot create the snapshot link: " + ec.message());
  }
}

uint64_t free_bytes(const fs::path& path) {
  if (auto v = env_or_empty("BILLION_TEST_FREE_BYTES"); !v.empty()) return std::strtoull(v.c_str(), nullptr, 10);
  fs::path p = fs::absolute(path);
  std::error_code ec;
  while (!fs::exists(p, ec) && p.has_parent_path() && p != p.parent_path()) p = p.parent_path();
  struct statvfs st {};
  if (::statvfs(p.c_str(), &st) != 0) return UINT64_MAX;  // unknown: do not block the download
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  }
  return buf;
}

}  // namespace billion::hub
