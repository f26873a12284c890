// Hub API calls, error mapping, retries and file selection (see hub_api.h). Messages name the
// repo and say what to do; the token never appears in them (only where it came from).
#include "hub/hub_api.h"

#include <fnmatch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "hub/exit_codes.h"
#include "hub/hub_cache.h"

namespace billion::hub {

using nlohmann::json;

namespace {

std::string trim_ws(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

double env_seconds(const char* name, double fallback) {
  std::string v = env_or_empty(name);
  if (v.empty()) return fallback;
  try {
    double s = std::stod(v);
    return s > 0 ? s : fallback;
  } catch (...) {
    return fallback;
  }
}

// Server-supplied text shown to the user: printable ASCII only, bounded length.
std::string sanitize(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
    if (out.size() >= 300) {
      out += "...";
      break;
    }
  }
  return out;
}

std::string how_to_pass_token() {
  return "Pass a token with `--token hf_...`, or set HF_TOKEN, or save it in " + (hf_home() / "token").string() +
         " (create one with read access at https://huggingface.co/settings/tokens).";
}

}  // namespace

std::optional<Token> find_token(const std::string& explicit_token) {
  if (!trim_ws(explicit_token).empty()) return Token{trim_ws(explicit_token), "--token"};
  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    std::string v = trim_ws(env_or_empty(name));
    if (!v.empty()) return Token{v, name};
  }
  std::string path = env_or_empty("HF_TOKEN_PATH");
  std::filesystem::path file = path.empty() ? hf_home() / "token" : std::filesystem::path(path);
  std::ifstream in(file);
  if (in) {
    std::string v;
    std::getline(in, v);
    v = trim_ws(v);
    if (!v.empty()) return Token{v, file.string()};
  }
  return std::nullopt;
}

HubConfig hub_config_from_env(const std::string& token_arg, const std::string& cache_dir_arg) {
  HubConfig c;
  std::string endpoint = env_or_empty("HF_ENDPOINT");
  if (!endpoint.empty()) c.endpoint = endpoint;
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  c.token = find_token(token_arg);
  c.cache_dir = cache_dir_arg.empty() ? default_cache_dir() : std::filesystem::path(cache_dir_arg);
  c.offline = env_truthy("HF_HUB_OFFLINE") || env_truthy("TRANSFORMERS_OFFLINE");
  double etag = env_seconds("HF_HUB_ETAG_TIMEOUT", 10);
  double download = env_seconds("HF_HUB_DOWNLOAD_TIMEOUT", 10);
  c.api_timeouts = {etag, etag, std::max(60.0, etag * 6)};
  c.download_timeouts = {download, download, 0};
  if (auto v = env_or_empty("BILLION_HUB_BACKOFF_MS"); !v.empty()) c.backoff_ms = std::max(0, std::atoi(v.c_str()));
  if (auto v = env_or_empty("BILLION_HUB_RETRIES"); !v.empty()) c.max_retries = std::max(0, std::atoi(v.c_str()));
  return c;
}

std::string redact(std::string text, const HubConfig& config) {
  if (!config.token || config.token->value.size() < 4) return text;
  const std::string& t = config.token->value;
  for (size_t pos = text.find(t); pos != std::string::npos; pos = text.find(t, pos)) text.replace(pos, t.size(), "***");
  return text;
}

std::string resolve_url(const HubConfig& config, const std::string& repo_id, const std::string& revision,
                        const std::string& file) {
  // huggingface_hub quotes the revision with no safe characters (refs/pr/1 → refs%2Fpr%2F1)
  // and the file name keeping '/'.
  return config.endpoint + "/" + repo_id + "/resolve/" + url_quote(revision) + "/" + url_quote(file, "/");
}

std::vector<std::string> hub_headers(const HubConfig& config, const std::string& url) {
  std::vector<std::string> h;
  if (config.token && url_host(url) == url_host(config.endpoint)) h.push_back("Authorization: Bearer " + config.token->value);
  return h;
}

std::string gated_repo_message(const HubConfig& config, const std::string& repo_id) {
  std::string text = repo_id + " is a gated model: its licence must be accepted on the Hub before it can be downloaded.\n" +
                     "  1. Open " + config.endpoint + "/" + repo_id +
                     " , log in, and accept the licence (access may take a while to be granted).\n";
  if (config.token) {
    text += "  2. The token from " + config.token->source +
            " was sent but has no access to this repo yet: accept the licence with the account that owns the token, "
            "or use a token (with read access to gated repos) of an account that has access.";
  } else {
    text += "  2. No token was sent. " + how_to_pass_token();
  }
  return text;
}

bool is_retryable_status(long status) { return status == 408 || status == 429 || status >= 500; }

void throw_http_error(const HubConfig& config, const HttpResponse& r, const std::string& repo_id,
                      const std::string& revision, const std::string& file) {
  std::string code = r.header("x-error-code");
  std::string message = sanitize(r.header("x-error-message"));
  const std::string page = config.endpoint + "/" + repo_id;
  std::string what = file.empty() ? repo_id : repo_id + ": " + file;
  auto fail_with = [&](const std::string& text, int exit) { throw Error(redact(text, config), exit); };

  if (is_retryable_status(r.status)) {
    double retry_after = 0;
    if (auto v = r.header("retry-after"); !v.empty()) retry_after = std::atof(v.c_str());
    throw RetryableStatus(what + ": the Hub answered HTTP " + std::to_string(r.status) +
                              (message.empty() ? "" : " (" + message + ")"),
                          r.status, retry_after);
  }
  if (code == "GatedRepo") fail_with(gated_repo_message(config, repo_id), exit_code::kGated);
  if (r.status == 401 && message == "Invalid credentials in Authorization header") {
    fail_with("the Hub rejected the token from " + (config.token ? config.token->source : std::string("the request")) +
                  " (invalid or expired) while fetching " + what + ". Check it at https://huggingface.co/settings/tokens. " +
                  how_to_pass_token(),
              exit_code::kAuth);
  }
  if (code == "RevisionNotFound") {
    fail_with(repo_id + ": revision '" + revision + "' does not exist (check the branch, tag or commit on " + page + ")",
              exit_code::kNotFound);
  }
  if (code == "EntryNotFound" || (r.status == 404 && !file.empty() && code != "RepoNotFound")) {
    fail_with(what + ": file not found in the repo at revision " + revision, exit_code::kNotFound);
  }
  if (code == "RepoNotFound" || r.status == 401 || r.status == 404) {
    std::string text = repo_id + ": repository not found at " + page + " (check the spelling of the model name).";
    if (config.token) {
      text += " If it is private or gated, the token from " + config.token->source + " may not have access to it.";
    } else {
      text += " If it is private or gated, you need a token: " + how_to_pass_token();
    }
    fail_with(text, exit_code::kNotFound);
  }
  if (r.status == 403) {
    if (message == "Access to this resource is disabled.") {
      fail_with(repo_id + ": access to this repo has been disabled on the Hub", exit_code::kGeneric);
    }
    fail_with(what + ": forbidden (HTTP 403" + (message.empty() ? "" : ": " + message) + "). " +
                  (config.token ? "The token from " + config.token->source + " lacks the needed permission." : how_to_pass_token()),
              exit_code::kAuth);
  }
  fail_with(what + ": unexpected HTTP " + std::to_string(r.status) + " from the Hub" + (message.empty() ? "" : " (" + message + ")"),
            exit_code::kNetwork);
  throw Error("unreachable");  // fail_with always throws; this tells the compiler
}

int backoff_delay_ms(const HubConfig& config, int attempt, double retry_after_s) {
  if (retry_after_s > 0) return static_cast<int>(std::min(retry_after_s, 30.0) * 1000);
  double d = config.backoff_ms * std::pow(2.0, std::min(attempt, 10));
  d = std::min(d, 30000.0);
  // Jitter (±20 %) so parallel workers hitting the same 429 do not retry in lock-step.
  static thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return static_cast<int>(d * jitter(rng));
}

void with_retries(const HubConfig& config, const std::string& what, const std::function<void()>& attempt,
                  const std::function<void(const std::string&)>& on_retry) {
  for (int i = 0;; ++i) {
    double retry_after = 0;
    std::string reason;
    try {
      attempt();
      return;
    } catch (const NetworkError& e) {
      if (!e.transient() || i >= config.max_retries) {
        throw Error(redact(std::string(e.what()) + (i > 0 ? " (after " + std::to_string(i + 1) + " attempts)" : ""), config),
                    e.exit_code());
      }
      reason = e.what();
    } catch (const RetryableStatus& e) {
      if (i >= config.max_retries) {
        throw Error(redact(std::string(e.what()) + " (after " + std::to_string(i + 1) + " attempts)", config),
                    exit_code::kNetwork);
      }
      reason = e.what();
      retry_after = e.retry_after_s();
    }
    int delay = backoff_delay_ms(config, i, retry_after);
    if (on_retry) on_retry(redact(what + ": " + reason + "; retrying in " + std::to_string(delay) + " ms", config));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
}

namespace {

HttpResponse api_get(const HubConfig& config, const std::string& url, const std::string& repo_id, const std::string& revision) {
  HttpResponse out;
  with_retries(config, repo_id, [&] {
    HttpRequest req;
    req.url = url;
    req.headers = hub_headers(config, url);
    req.follow_redirects = true;  // API redirects (renamed repos) stay on the Hub
    req.timeouts = config.api_timeouts;
    HttpResponse r = http_request(req, nullptr, 64u << 20);
    if (r.status != 200) throw_http_error(config, r, repo_id, revision, "");
    out = std::move(r);
  });
  return out;
}

json parse_json(const std::string& body, const std::string& what) {
  try {
    return json::parse(body);
  } catch (const json::exception& e) {
    throw Error(what + ": the Hub's answer is not valid JSON (" + std::string(e.what()).substr(0, 160) + ")",
                exit_code::kNetwork);
  }
}

}  // namespace

RepoListing list_repo(const HubConfig& config, const std::string& repo_id, const std::string& revision) {
  RepoListing listing;
  std::string api = config.endpoint + "/api/models/" + repo_id;
  if (is_commit_hash(revision)) {
    listing.commit = revision;
  } else {
    HttpResponse r = api_get(config, api + "/revision/" + url_quote(revision), repo_id, revision);
    json info = parse_json(r.body, repo_id + " (model info)");
    if (!info.is_object() || !info.contains("sha") || !info["sha"].is_string() || !is_commit_hash(info["sha"].get<std::string>())) {
      throw Error(repo_id + ": the Hub's model info has no valid commit hash ('sha')", exit_code::kNetwork);
    }
    listing.commit = info["sha"].get<std::string>();
    if (info.contains("gated") && info["gated"].is_string()) listing.gated = info["gated"].get<std::string>();
  }

  std::string url = api + "/tree/" + listing.commit + "?recursive=true&expand=false";
  for (int page = 0; !url.empty(); ++page) {
    if (page > 10000) throw Error(repo_id + ": the file list never ends (pagination loop?)", exit_code::kNetwork);
    HttpResponse r = api_get(config, url, repo_id, revision);
    json entries = parse_json(r.body, repo_id + " (file list)");
    if (!entries.is_array()) throw Error(repo_id + ": the Hub's file list is not a JSON array", exit_code::kNetwork);
    for (const auto& e : entries) {
      try {
        if (!e.is_object() || e.value("type", "") != "file") continue;
        RepoFileEntry f;
        f.path = e.at("path").get<std::string>();
        f.size = e.at("size").get<uint64_t>();
        f.blob_id = e.value("oid", "");
        if (e.contains("lfs") && e["lfs"].is_object()) {
          f.lfs_sha256 = e["lfs"].value("oid", "");
          if (e["lfs"].contains("size")) f.size = e["lfs"]["size"].get<uint64_t>();
        }
        if (!is_safe_repo_path(f.path)) {
          throw Error(repo_id + ": the file list has an unsafe path '" + sanitize(f.path) + "'", exit_code::kNetwork);
        }
        listing.files.push_back(std::move(f));
      } catch (const json::exception& ex) {
        throw Error(repo_id + ": malformed entry in the Hub's file list (" + std::string(ex.what()).substr(0, 160) + ")",
                    exit_code::kNetwork);
      }
    }
    std::string next = link_next(r.header("link"));
    if (!next.empty() && next.rfind("http", 0) != 0) next = config.endpoint + (next.front() == '/' ? "" : "/") + next;
    url = next;
  }
  return listing;
}

FileMetadata head_file(const HubConfig& config, const std::string& repo_id, const std::string& commit, const std::string& file) {
  std::string url = resolve_url(config, repo_id, commit, file);
  HttpResponse r;
  // Redirects on the Hub's host (a renamed repo) are followed by hand, keeping the token; one to
  // another host is the CDN and is the answer itself (as in huggingface_hub). Bounded against loops.
  for (int hop = 0;; ++hop) {
    if (hop > 10) throw Error(repo_id + ": " + file + ": too many redirects (a redirect loop?)", exit_code::kNetwork);
    HttpRequest req;
    req.method = "HEAD";
    req.url = url;
    req.headers = hub_headers(config, url);
    req.timeouts = config.api_timeouts;
    r = http_request(req);
    std::string location = r.header("location");
    if (r.status >= 300 && r.status < 400 && !location.empty()) {
      bool absolute = location.rfind("http://", 0) == 0 || location.rfind("https://", 0) == 0;
      if (!absolute) {
        std::string origin = config.endpoint.substr(0, config.endpoint.find('/', config.endpoint.find("://") + 3));
        url = location.front() == '/' ? origin + location : url.substr(0, url.rfind('/') + 1) + location;
        continue;
      }
      if (url_host(location) == url_host(config.endpoint)) {  // still the Hub (huggingface_hub >= 1.x does the same)
        url = location;
        continue;
      }
    }
    break;
  }
  if (r.status >= 400) throw_http_error(config, r, repo_id, commit, file);
  bool redirect = r.status >= 300 && r.status < 400;
  FileMetadata m;
  m.commit = r.header("x-repo-commit");
  m.etag = normalize_etag(!r.header("x-linked-etag").empty() ? r.header("x-linked-etag") : r.header("etag"));
  std::string size = r.header("x-linked-size");
  if (size.empty() && !redirect) size = r.header("content-length");
  m.location = redirect ? r.header("location") : url;
  std::string what = repo_id + ": " + file;
  if (m.commit.empty()) {
    throw Error(what + ": the answer has no X-Repo-Commit header; is HF_ENDPOINT (" + config.endpoint +
                    ") a Hugging Face Hub, or is a proxy rewriting the answers?",
                exit_code::kNetwork);
  }
  if (m.etag.empty() || !is_safe_etag(m.etag)) {
    throw Error(what + ": the answer has no usable ETag/X-Linked-Etag header", exit_code::kNetwork);
  }
  if (size.empty() || size.find_first_not_of("0123456789") != std::string::npos) {
    throw Error(what + ": the answer does not give the file size (X-Linked-Size/Content-Length)", exit_code::kNetwork);
  }
  m.size = std::stoull(size);
  if (m.location.empty()) throw Error(what + ": redirect without a Location header", exit_code::kNetwork);
  return m;
}

bool glob_match(const std::string& pattern, const std::string& path) {
  std::string p = pattern;
  if (!p.empty() && p.back() == '/') p += "*";
  return ::fnmatch(p.c_str(), path.c_str(), 0) == 0;  // no FNM_PATHNAME: '*' crosses '/'
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_pickle(const std::string& path) {
  for (const char* ext : {".bin", ".pth", ".pt", ".ckpt", ".pkl", ".pickle"}) {
    if (ends_with(path, ext)) return true;
  }
  return false;
}

// Top-level files the engine reads besides the weights.
bool is_support_file(const std::string& path) {
  static const char* names[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                "tokenizer.model", "special_tokens_map.json", "added_tokens.json", "vocab.json",
                                "merges.txt", "chat_template.jinja", "chat_template.json"};
  for (const char* n : names) {
    if (path == n) return true;
  }
  return ends_with(path, ".tiktoken");  // StableLM-2's arcade100k vocabulary
}

}  // namespace

std::vector<RepoFileEntry> select_files(const std::vector<RepoFileEntry>& files, const std::vector<std::string>& includes,
                                        const std::string& repo_id) {
  bool has_safetensors = std::any_of(files.begin(), files.end(), [](const auto& f) { return ends_with(f.path, ".safetensors"); });
  std::vector<RepoFileEntry> out;
  if (!includes.empty()) {
    for (const auto& f : files) {
      if (has_safetensors && is_pickle(f.path)) continue;
      if (std::any_of(includes.begin(), includes.end(), [&](const auto& g) { return glob_match(g, f.path); })) out.push_back(f);
    }
    if (out.empty()) throw Error(repo_id + ": no file matches --include " + includes.front(), exit_code::kNotFound);
    return out;
  }
  bool top_safetensors = false;
  for (const auto& f : files) {
    if (f.path.find('/') != std::string::npos) continue;  // original/, onnx/ etc. are not for us
    if (ends_with(f.path, ".safetensors")) {
      top_safetensors = true;
      out.push_back(f);
    } else if (ends_with(f.path, ".safetensors.index.json") || is_support_file(f.path)) {
      out.push_back(f);
    }
  }
  if (!top_safetensors) {
    std::vector<std::string> pickles, ggufs;
    for (const auto& f : files) {
      if (is_pickle(f.path)) pickles.push_back(f.path);
      if (ends_with(f.path, ".gguf")) ggufs.push_back(f.path);
    }
    if (!ggufs.empty()) {
      throw Error(repo_id + ": this repo has no safetensors weights but GGUF files (e.g. " + ggufs.front() +
                      "); pick one with --include '" + ggufs.front() + "'",
                  exit_code::kGeneric);
    }
    if (!pickles.empty()) {
      throw Error(repo_id + ": this repo only has PyTorch pickle weights (" + pickles.front() +
                      "), which billion does not load: unpickling can run arbitrary code. Look for a safetensors "
                      "version (often a 'refs/pr/N' revision opened by the SFconvertbot, usable with --revision), "
                      "or convert the weights to safetensors with Python first.",
                  exit_code::kGeneric);
    }
    throw Error(repo_id + ": this repo has no model weights (no .safetensors file)", exit_code::kGeneric);
  }
  return out;
}

}  // namespace billion::hub
