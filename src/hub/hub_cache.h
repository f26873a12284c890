// The Hugging Face cache layout shared with Python tools (huggingface_hub, transformers):
//   $HF_HUB_CACHE/models--org--name/{blobs/<etag>, snapshots/<commit>/<path> -> ../../blobs/<etag>,
//   refs/<revision>}, plus .locks/models--org--name/<etag>.lock. Pure path logic lives here so
// it can be unit-tested; nothing in this file talks to the network.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace billion::hub {

namespace fs = std::filesystem;

// True for "1", "on", "yes", "true" in any case (huggingface_hub's rule for boolean env vars).
bool env_truthy(const char* name);
// Value of an environment variable, or "" when unset.
std::string env_or_empty(const char* name);

// $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface.
fs::path hf_home();
// $HF_HUB_CACHE, else legacy $HUGGINGFACE_HUB_CACHE, else hf_home()/hub.
fs::path default_cache_dir();

// "org/name" → "models--org--name".
std::string repo_folder_name(const std::string& repo_id);

// Strips a weak-validator prefix "W/" and surrounding quotes, as huggingface_hub does.
std::string normalize_etag(const std::string& etag);
bool is_commit_hash(const std::string& text);  // 40 lower-case hex digits
bool is_sha256_hex(const std::string& text);   // 64 hex digits: an LFS etag
// An etag becomes a file name: only [A-Za-z0-9._-], not "." or "..", at most 128 characters.
bool is_safe_etag(const std::string& etag);
// A path inside a repo: relative, '/'-separated, no empty, "." or ".." component, no '\\' or NUL.
bool is_safe_repo_path(const std::string& path);

// Paths of one repository inside a cache directory.
class RepoCache {
 public:
  RepoCache(fs::path cache_dir, std::string repo_id);
  const fs::path& cache_dir() const { return cache_dir_; }
  const std::string& repo_id() const { return repo_id_; }
  fs::path folder() const { return cache_dir_ / repo_folder_name(repo_id_); }
  fs::path blob(const std::string& etag) const { return folder() / "blobs" / etag; }
  fs::path incomplete(const std::string& etag) const { return folder() / "blobs" / (etag + ".incomplete"); }
  fs::path snapshot(const std::string& commit) const { return folder() / "snapshots" / commit; }
  fs::path pointer(const std::string& commit, const std::string& file) const { return snapshot(commit) / file; }
  fs::path ref(const std::string& revision) const { return folder() / "refs" / revision; }
  fs::path lock(const std::string& etag) const {
    return cache_dir_ / ".locks" / repo_folder_name(repo_id_) / (etag + ".lock");
  }

  // refs/<revision> content (a commit hash), or nullopt when absent or not a commit hash.
  std::optional<std::string> read_ref(const std::string& revision) const;
  // Writes refs/<revision> atomically (temp file + rename), no trailing newline, as Python does.
  void write_ref(const std::string& revision, const std::string& commit) const;
  // The snapshot folder for a revision (a commit hash, or a branch/tag through refs/), if present.
  std::optional<fs::path> find_snapshot(const std::string& revision) const;
  // Creates snapshots/<commit>/<file> as a relative symlink to blobs/<etag>, replacing any old
  // entry atomically (symlink under a temporary name, then rename).
  void link_pointer(const std::string& commit, const std::string& file, const std::string& etag) const;

 private:
  fs::path cache_dir_;
  std::string repo_id_;
};

// The symlink target of snapshots/<commit>/<file> → blobs/<etag>: "../../blobs/<etag>" with one
// more "../" per sub-folder of `file`.
std::string relative_blob_target(const std::string& file, const std::string& etag);

// Free bytes for an unprivileged writer on the file system that holds `path` (or its first
// existing parent). BILLION_TEST_FREE_BYTES overrides the answer (tests without tmpfs).
uint64_t free_bytes(const fs::path& path);

// "1.5 GiB", "12.0 MiB", "512 B".
std::string format_bytes(uint64_t bytes);

}  // namespace billion::hub
