// Resumable, verified downloads into the Hugging Face cache (see download.h).
//
// Per file: HEAD the resolve URL (commit, etag, size, CDN location) → take the lock
// .locks/<repo>/<etag>.lock (another process may be fetching the same blob) → append to
// blobs/<etag>.incomplete from its current size with a Range request → hash while writing →
// size and sha256 check → fsync + rename to blobs/<etag> (atomic) → relative symlink in
// snapshots/<commit>/. A kill at any point leaves either no blob or a complete, verified one.
#include "hub/download.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "hub/exit_codes.h"
#include "hub/hub_cache.h"
#include "hub/sha256.h"

namespace billion::hub {

uint64_t ModelPlan::bytes_to_download() const {
  uint64_t sum = 0;
  for (const auto& f : files) {
    if (f.state == PlannedFile::State::kDownload) sum += f.entry.size - std::min(f.entry.size, f.partial);
  }
  return sum;
}

size_t ModelPlan::count(PlannedFile::State state) const {
  return static_cast<size_t>(std::count_if(files.begin(), files.end(), [&](const auto& f) { return f.state == state; }));
}

namespace {

uint64_t size_or_zero(const fs::path& p) {
  std::error_code ec;
  auto s = fs::file_size(p, ec);  // follows symlinks: a dangling snapshot link counts as absent
  return ec ? 0 : s;
}

bool exists_with_size(const fs::path& p, uint64_t size) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return false;
  return size_or_zero(p) == size;
}

// RAII flock on the blob's lock file; blocks while another process downloads the same blob.
class BlobLock {
 public:
  explicit BlobLock(const fs::path& path) {
    fs::create_directories(path.parent_path());
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(path.string() + ": cannot open the lock file: " + std::strerror(errno));
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) throw Error(path.string() + ": cannot lock: " + std::strerror(errno));
    }
  }
  ~BlobLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
  }
  BlobLock(const BlobLock&) = delete;
  BlobLock& operator=(const BlobLock&) = delete;

 private:
  int fd_ = -1;
};

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// Errors that mean every other file of the repo will fail the same way: stop starting new ones.
bool is_repo_wide(int code) {
  return code == exit_code::kGated || code == exit_code::kAuth || code == exit_code::kNotFound;
}

struct FileJob {
  const HubConfig* config;
  const ModelPlan* plan;
  const PlannedFile* file;
  Progress* progress;
  RepoCache cache;
};

}  // namespace

// Streams the body into `part` (blobs/<etag>.incomplete for the Hub), resuming and retrying;
// the file becomes `final_path` only once it holds exactly `size` bytes of the right sha256.
void fetch_resumable(const HubConfig& config, const ResumableFetch& fetch, Progress& progress) {
  const std::string& name = fetch.label;
  const std::string& what = fetch.what;
  const fs::path& part = fetch.part;
  FileDescriptor fd(::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) throw Error(part.string() + ": cannot open for writing: " + std::strerror(errno));
  off_t end = ::lseek(fd.get(), 0, SEEK_END);
  uint64_t offset = end > 0 ? static_cast<uint64_t>(end) : 0;
  const uint64_t size = fetch.size;
  auto restart = [&] {
    if (::ftruncate(fd.get(), 0) != 0 || ::lseek(fd.get(), 0, SEEK_SET) != 0) {
      throw Error(part.string() + ": cannot truncate: " + std::strerror(errno));
    }
    offset = 0;
  };
  if (offset > size) restart();  // longer than the file can be: not ours to trust

  const bool verify = !fetch.sha256.empty();
  Sha256 hash;
  if (verify && offset > 0) sha256_update_from_file(hash, part, offset);
  int id = progress.file_started(name, size, offset);

  int failures = 0;
  int attempts = 0;
  while (offset < size) {
    uint64_t before = offset;
    bool overflow = false, bad_range = false;
    std::string bad_length;  // Content-Length disagrees with the size the Hub announced
    std::string write_error;
    std::string reason;
    double retry_after = 0;
    try {
      HttpRequest req;
      req.url = fetch.url;
      req.headers = fetch.headers;  // hub_headers(): no token for another host (CDN)
      req.follow_redirects = true;
      req.range_start = offset;
      req.timeouts = config.download_timeouts;
      BodySink sink;
      sink.on_response = [&](long status, const HttpHeaders& headers) {
        if (status == 200 || status == 206) {
          auto it = headers.find("content-length");
          uint64_t expected = status == 206 ? size - offset : size;
          if (it != headers.end() && std::strtoull(it->second.c_str(), nullptr, 10) != expected) {
            bad_length = "the server announced a body of " + it->second + " bytes where " + std::to_string(expected) +
                         " were expected (file size " + std::to_string(size) + " " + fetch.size_source + ")";
          }
        }
        if (status == 206) {
          // "bytes 100-999/1000": the body must start where our file ends.
          auto it = headers.find("content-range");
          uint64_t start = UINT64_MAX;
          if (it != headers.end()) {
            auto sp = it->second.find(' ');
            if (sp != std::string::npos) start = std::strtoull(it->second.c_str() + sp + 1, nullptr, 10);
          }
          if (start != offset) bad_range = true;
          return true;
        }
        if (status == 200) {
          // A 200 to a Range request is the whole file again: start over cleanly.
          if (offset > 0) {
            restart();
            hash.reset();
            progress.file_progress(id, 0);
          }
          return true;
        }
        return false;  // an error page: kept in the response for the message
      };
      sink.on_data = [&](const char* data, size_t n) {
        if (bad_range || !bad_length.empty()) return false;
        if (offset + n > size) {
          overflow = true;
          return false;
        }
        size_t written = 0;
        while (written < n) {
          ssize_t w = ::write(fd.get(), data + written, n - written);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) {
            write_error = std::strerror(errno);
            return false;
          }
          written += static_cast<size_t>(w);
        }
        if (verify) hash.update(data, n);
        offset += n;
        progress.file_progress(id, offset);
        return true;
      };
      HttpResponse r = http_request(req, &sink, 64u << 10);
      if (r.status == 416) {
        // Our partial file does not fit the server's idea of the file: start again from zero.
        restart();
        hash.reset();
        progress.file_progress(id, 0);
        reason = "range not satisfiable, restarting from the beginning";
      } else if (r.status != 200 && r.status != 206) {
        if (fetch.throw_http_error) fetch.throw_http_error(r);
        throw Error(what + ": unexpected HTTP " + std::to_string(r.status), exit_code::kNetwork);
      } else if (offset < size) {
        reason = "the connection ended after " + format_bytes(offset) + " of " + format_bytes(size);
      }
    } catch (const NetworkError& e) {
      if (!write_error.empty()) throw Error(part.string() + ": write failed: " + write_error);
      if (!bad_length.empty()) {
        std::string text = redact(what + ": " + bad_length, config);
        progress.file_failed(id, text);
        throw Error(text, exit_code::kNetwork);
      }
      if (overflow) {
        ::close(fd.release());
        fs::remove(part);
        throw Error(what + ": the server sent more bytes than the announced size (" + std::to_string(size) +
                        "); the partial file was deleted",
                    exit_code::kIntegrity);
      }
      if (bad_range) {
        restart();
        hash.reset();
        progress.file_progress(id, 0);
        reason = "the server answered a different byte range, restarting from the beginning";
      } else {
        if (!e.transient()) {
          std::string text = redact(what + ": " + e.what(), config);
          progress.file_failed(id, text);
          throw Error(text, e.exit_code());
        }
        reason = e.what();
      }
    } catch (const RetryableStatus& e) {
      reason = e.what();
      retry_after = e.retry_after_s();
    } catch (const Error& e) {
      if (!is_repo_wide(e.exit_code())) progress.file_failed(id, e.what());
      throw;
    }
    if (offset >= size && reason.empty()) break;
    // Data arriving resets the count (as huggingface_hub does), but not forever.
    if (offset > before) failures = 0;
    ++failures;
    ++attempts;
    if (failures > config.max_retries || attempts > 10 * (config.max_retries + 1)) {
      std::string text = redact(what + ": " + reason + " (gave up after " + std::to_string(attempts) +
                                    " attempts; run the command again to resume from " + format_bytes(offset) + ")",
                                config);
      progress.file_failed(id, text);
      throw Error(text, exit_code::kNetwork);
    }
    int delay = backoff_delay_ms(config, failures - 1, retry_after);
    progress.message(redact(what + ": " + reason + "; retrying in " + std::to_string(delay) + " ms", config));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }

  if (::fsync(fd.get()) != 0) throw Error(part.string() + ": fsync failed: " + std::strerror(errno));
  ::close(fd.release());
  uint64_t on_disk = size_or_zero(part);
  if (on_disk != size) {
    fs::remove(part);
    std::string text = what + ": size mismatch: expected " + std::to_string(size) + " bytes, got " + std::to_string(on_disk) +
                       "; the partial file was deleted";
    progress.file_failed(id, text);
    throw Error(text, exit_code::kIntegrity);
  }
  std::string note;
  if (verify) {
    std::string digest = hash.hex_digest();
    std::string expected = fetch.sha256;
    std::transform(expected.begin(), expected.end(), expected.begin(), ::tolower);
    if (digest != expected) {
      fs::remove(part);
      std::string text = what + ": sha256 mismatch: expected " + expected + ", got " + digest +
                         " (corrupted in transit or on the server); the partial file was deleted, run the command again";
      progress.file_failed(id, text);
      throw Error(text, exit_code::kIntegrity);
    }
    note = "sha256 ok";
  }
  fs::rename(part, fetch.final_path);
  progress.file_finished(id, note);
}

namespace {

void fetch_blob(const FileJob& job, const FileMetadata& meta) {
  ResumableFetch fetch;
  fetch.label = job.file->entry.path;
  fetch.what = job.plan->repo_id + ": " + fetch.label;
  fetch.url = meta.location;
  fetch.headers = hub_headers(*job.config, meta.location);
  fetch.size = meta.size;
  if (is_sha256_hex(meta.etag)) fetch.sha256 = meta.etag;  // LFS: the etag is the content's sha256
  fetch.part = job.cache.incomplete(meta.etag);
  fetch.final_path = job.cache.blob(meta.etag);
  fetch.throw_http_error = [&](const HttpResponse& r) {
    throw_http_error(*job.config, r, job.plan->repo_id, job.plan->commit, job.file->entry.path);
  };
  fetch_resumable(*job.config, fetch, *job.progress);
}

void download_file(const FileJob& job) {
  const HubConfig& config = *job.config;
  const std::string& name = job.file->entry.path;
  FileMetadata meta;
  with_retries(
      config, job.plan->repo_id + ": " + name, [&] { meta = head_file(config, job.plan->repo_id, job.plan->commit, name); },
      [&](const std::string& line) { job.progress->message(line); });
  if (meta.size > (50ull << 30)) {
    throw Error(job.plan->repo_id + ": " + name + " is larger than 50 GB; plain HTTP downloads are refused above that",
                exit_code::kGeneric);
  }
  fs::path blob = job.cache.blob(meta.etag);
  if (!exists_with_size(blob, meta.size)) {
    BlobLock lock(job.cache.lock(meta.etag));
    if (!exists_with_size(blob, meta.size)) fetch_blob(job, meta);  // re-check: another process may have won
  }
  job.cache.link_pointer(job.plan->commit, name, meta.etag);
}

}  // namespace

ModelPlan plan_model(const HubConfig& config, const std::string& name, const std::string& repo_id,
                     const DownloadOptions& options) {
  ModelPlan plan;
  plan.name = name;
  plan.repo_id = repo_id;
  plan.revision = options.revision;
  RepoListing listing = list_repo(config, repo_id, options.revision);
  plan.commit = listing.commit;
  // The Hub serves a gated repo's info and file list to anyone, but no file without a token:
  // say so now, before its size counts in the free-space check.
  if (!listing.gated.empty() && !config.token) throw Error(gated_repo_message(config, repo_id), exit_code::kGated);
  RepoCache cache(config.cache_dir, repo_id);
  for (auto& entry : select_files(listing.files, options.includes, repo_id)) {
    PlannedFile f;
    f.entry = entry;
    std::string etag = entry.expected_etag();
    if (size_or_zero(cache.pointer(plan.commit, entry.path)) == entry.size &&
        fs::exists(cache.pointer(plan.commit, entry.path))) {
      f.state = PlannedFile::State::kPresent;  // e.g. downloaded earlier by huggingface_hub
    } else if (is_safe_etag(etag) && exists_with_size(cache.blob(etag), entry.size)) {
      f.state = PlannedFile::State::kLinkOnly;  // same content already cached under another commit
    } else {
      f.state = PlannedFile::State::kDownload;
      if (is_safe_etag(etag)) {
        uint64_t partial = size_or_zero(cache.incomplete(etag));
        if (partial <= entry.size) f.partial = partial;
      }
    }
    plan.files.push_back(std::move(f));
  }
  return plan;
}

uint64_t disk_margin(uint64_t needed) { return std::max<uint64_t>(needed / 100, 16ull << 20); }

void check_disk_space(const HubConfig& config, uint64_t needed) {
  if (needed == 0) return;
  uint64_t free = free_bytes(config.cache_dir);
  uint64_t margin = disk_margin(needed);
  if (free == UINT64_MAX || free >= needed + margin) return;
  throw Error("not enough disk space in " + config.cache_dir.string() + ": the download needs " + format_bytes(needed) +
                  " (+ " + format_bytes(margin) + " margin) but only " + format_bytes(free) +
                  " is free. Free some space, or choose another cache with --cache-dir or HF_HUB_CACHE. Nothing was written.",
              exit_code::kDiskSpace);
}

std::filesystem::path download_model(const HubConfig& config, const ModelPlan& plan, const DownloadOptions& options,
                                     Progress& progress) {
  RepoCache cache(config.cache_dir, plan.repo_id);
  fs::create_directories(cache.folder() / "blobs");
  fs::create_directories(cache.snapshot(plan.commit));
  std::vector<const PlannedFile*> pending;
  for (const auto& f : plan.files) {
    if (f.state == PlannedFile::State::kLinkOnly) cache.link_pointer(plan.commit, f.entry.path, f.entry.expected_etag());
    if (f.state == PlannedFile::State::kDownload) pending.push_back(&f);
  }
  progress.add_total(plan.bytes_to_download());

  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex error_mutex;
  std::optional<Error> first_error;
  size_t failed = 0;
  auto worker = [&] {
    for (size_t i = next++; i < pending.size() && !stop; i = next++) {
      try {
        download_file(FileJob{&config, &plan, pending[i], &progress, cache});
      } catch (const Error& e) {
        std::lock_guard lock(error_mutex);
        ++failed;
        // A gated/auth/not-found answer will repeat for every file: report it once, stop.
        if (is_repo_wide(e.exit_code())) stop = true;
        if (!first_error || (is_repo_wide(e.exit_code()) && !is_repo_wide(first_error->exit_code()))) {
          first_error = Error(redact(e.what(), config), e.exit_code());
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(error_mutex);
        ++failed;
        if (!first_error) first_error = Error(redact(plan.repo_id + ": " + pending[i]->entry.path + ": " + e.what(), config));
      }
    }
  };
  int jobs = std::clamp(options.jobs, 1, 16);
  std::vector<std::thread> threads;
  for (int t = 1; t < jobs && static_cast<size_t>(t) < pending.size(); ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  if (first_error) {
    if (failed > 1 && !stop) {
      throw Error(std::string(first_error->what()) + " (and " + std::to_string(failed - 1) + " more failed files)",
                  first_error->exit_code());
    }
    throw *first_error;
  }
  // The ref is written last, so refs/<revision> only ever points at a complete snapshot.
  if (plan.revision != plan.commit) cache.write_ref(plan.revision, plan.commit);
  return cache.snapshot(plan.commit);
}

}  // namespace billion::hub
