// The Hugging Face Hub's HTTP API as the downloader uses it: settings from the environment,
// token lookup, revision → commit, the recursive file list, HEAD of resolve URLs, the mapping of
// error answers (X-Error-Code, 401/403/404) to actionable messages, the choice of files the
// engine needs, and retry with backoff for transient failures.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "hub/http.h"

namespace billion::hub {

// Where a token came from; printed in messages instead of the token itself.
struct Token {
  std::string value;
  std::string source;  // "--token", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", or the token file path
};

// Order (huggingface_hub's): explicit argument, HF_TOKEN, HUGGING_FACE_HUB_TOKEN, then the file
// $HF_TOKEN_PATH (default $HF_HOME/token). Empty values are skipped.
std::optional<Token> find_token(const std::string& explicit_token);

struct HubConfig {
  std::string endpoint = "https://huggingface.co";  // HF_ENDPOINT, no trailing '/'
  std::optional<Token> token;
  std::filesystem::path cache_dir;                   // HF_HUB_CACHE / HF_HOME / --cache-dir
  bool offline = false;                              // HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE
  HttpTimeouts api_timeouts{10, 10, 120};            // HF_HUB_ETAG_TIMEOUT sets the stall time
  HttpTimeouts download_timeouts{10, 10, 0};         // HF_HUB_DOWNLOAD_TIMEOUT sets the stall time
  int max_retries = 5;                               // per request, for transient failures
  int backoff_ms = 1000;                             // first wait; doubles; BILLION_HUB_BACKOFF_MS
};

// Reads the environment; explicit CLI values (non-empty) win.
HubConfig hub_config_from_env(const std::string& token_arg, const std::string& cache_dir_arg);

// Removes every occurrence of the token from text shown to the user (defence in depth: the
// server controls X-Error-Message and could echo anything back).
std::string redact(std::string text, const HubConfig& config);

// One file of the repository at a commit, from the tree API.
struct RepoFileEntry {
  std::string path;
  uint64_t size = 0;
  std::string blob_id;     // git blob sha1: the etag of a non-LFS file
  std::string lfs_sha256;  // sha256 of the content: the etag of an LFS file ("" if not LFS)
  std::string expected_etag() const { return lfs_sha256.empty() ? blob_id : lfs_sha256; }
};

struct RepoListing {
  std::string commit;
  std::string gated;  // "", "auto" or "manual" (from the model info; "" when unknown/false)
  std::vector<RepoFileEntry> files;
};

// Resolves the revision to a commit (model info API, skipped for a 40-hex commit) and lists all
// files recursively at that commit (tree API, following Link: rel="next" pages).
RepoListing list_repo(const HubConfig& config, const std::string& repo_id, const std::string& revision);

// What a HEAD of {endpoint}/{repo}/resolve/{commit}/{file} says.
struct FileMetadata {
  std::string commit;    // X-Repo-Commit
  std::string etag;      // X-Linked-Etag or ETag, normalised
  uint64_t size = 0;     // X-Linked-Size, or Content-Length of a non-redirect answer
  std::string location;  // where to GET: the redirect target (CDN) or the resolve URL itself
};
FileMetadata head_file(const HubConfig& config, const std::string& repo_id, const std::string& commit,
                       const std::string& file);

std::string resolve_url(const HubConfig& config, const std::string& repo_id, const std::string& revision,
                        const std::string& file);
// Request headers for a URL: the Authorization header only when the URL is on the Hub's host.
std::vector<std::string> hub_headers(const HubConfig& config, const std::string& url);

// What a failed answer means. Throws billion::Error with a message naming the repo (and file)
// and one of the exit codes in hub/exit_codes.h.
[[noreturn]] void throw_http_error(const HubConfig& config, const HttpResponse& response, const std::string& repo_id,
                                   const std::string& revision, const std::string& file);

// What to do about a gated repo: accept the licence at its page, then pass a token (or, with a
// token already sent, why it did not help). Names the token's source, never the token.
std::string gated_repo_message(const HubConfig& config, const std::string& repo_id);

// 408, 429 and 5xx are worth retrying.
bool is_retryable_status(long status);

// Runs `attempt` until it succeeds, retrying NetworkError(transient) and RetryableStatus with
// exponential backoff (honouring Retry-After up to 30 s). `what` names the request in messages.
class RetryableStatus : public Error {
 public:
  RetryableStatus(const std::string& message, long status, double retry_after_s)
      : Error(message), status_(status), retry_after_s_(retry_after_s) {}
  long status() const { return status_; }
  double retry_after_s() const { return retry_after_s_; }

 private:
  long status_;
  double retry_after_s_;
};
void with_retries(const HubConfig& config, const std::string& what, const std::function<void()>& attempt,
                  const std::function<void(const std::string&)>& on_retry = nullptr);
// Sleep before retry number `attempt` (0-based).
int backoff_delay_ms(const HubConfig& config, int attempt, double retry_after_s);

// fnmatch-style glob as huggingface_hub's allow_patterns: '*' also matches '/', and a pattern
// ending in '/' matches everything below that folder.
bool glob_match(const std::string& pattern, const std::string& path);

// The files the engine needs: config, generation config, tokenizer files, chat template,
// safetensors weights and their index, at the top level of the repo. With `includes`, exactly
// the files matching one of the globs instead. Pickle weights (.bin/.pth/.pt/.ckpt/.pkl) are
// never chosen when safetensors exist; a repo with only pickle (or no) weights is an error
// that names the repo and says what it has.
std::vector<RepoFileEntry> select_files(const std::vector<RepoFileEntry>& files, const std::vector<std::string>& includes,
                                        const std::string& repo_id);

}  // namespace billion::hub
