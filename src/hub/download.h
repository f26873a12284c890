// Downloading a model repository into the shared Hugging Face cache: plan (what is already
// there, what is missing, how many bytes), a free-space check before anything is written, then
// parallel resumable downloads that verify sha256 before a blob becomes visible.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "hub/hub_api.h"
#include "hub/progress.h"

namespace billion::hub {

struct DownloadOptions {
  std::string revision = "main";
  std::vector<std::string> includes;  // globs replacing the default choice of files
  bool dry_run = false;
  int jobs = 4;                       // files downloaded in parallel
};

struct PlannedFile {
  enum class State { kPresent, kLinkOnly, kDownload };
  RepoFileEntry entry;
  State state = State::kDownload;
  uint64_t partial = 0;  // bytes already in blobs/<etag>.incomplete (resume point)
};

struct ModelPlan {
  std::string name;     // as typed by the user (alias or repo id)
  std::string repo_id;
  std::string revision;
  std::string commit;
  std::vector<PlannedFile> files;
  uint64_t bytes_to_download() const;
  size_t count(PlannedFile::State state) const;
};

// Lists the repo and compares it with the cache. Writes nothing.
ModelPlan plan_model(const HubConfig& config, const std::string& name, const std::string& repo_id,
                     const DownloadOptions& options);

// Extra room kept free beyond the files themselves (temporary files, other writers).
uint64_t disk_margin(uint64_t needed);
// Throws Error(exit_code::kDiskSpace) naming needed and free sizes when `needed` (+ margin)
// does not fit on the file system of the cache directory.
void check_disk_space(const HubConfig& config, uint64_t needed);

// One file over plain HTTP(S) with the downloader's machinery, for Hub blobs and for data sets:
// appended to `part` from its current size with Range requests (a 200 or 416 restarts it
// cleanly), transient failures retried with backoff, progress reported, then exactly `size`
// bytes and, when `sha256` is given, the digest checked before `part` is fsync'ed and renamed to
// `final_path`. A size or sha256 mismatch deletes `part` (exit code 7); other failures keep it
// for the next run to resume.
struct ResumableFetch {
  std::string what;                  // names the file in messages ("org/name: model.safetensors")
  std::string label;                 // the file's name on the progress bar
  std::string url;
  std::vector<std::string> headers;  // may hold the token: never logged
  uint64_t size = 0;                 // announced before the transfer (Hub metadata, a HEAD)
  std::string size_source = "from the Hub";  // where `size` came from, for messages
  std::string sha256;                // expected digest in hex, or "" to check the size only
  std::filesystem::path part;
  std::filesystem::path final_path;
  // Throws for an HTTP error answer (RetryableStatus for a status worth retrying).
  std::function<void(const HttpResponse&)> throw_http_error;
};
void fetch_resumable(const HubConfig& config, const ResumableFetch& fetch, Progress& progress);

// Downloads what the plan lacks, links the snapshot, writes refs/<revision>; returns the
// snapshot folder. On failure the files that did complete stay usable; partial data is kept in
// blobs/<etag>.incomplete for the next run, except after a checksum mismatch.
std::filesystem::path download_model(const HubConfig& config, const ModelPlan& plan, const DownloadOptions& options,
                                     Progress& progress);

}  // namespace billion::hub
