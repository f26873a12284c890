// `billion download [MODEL ...]`: fetch models from the Hugging Face Hub into the shared cache.
// All models are planned first (file lists, what is already cached), the free space is checked
// once for the whole batch, then each model downloads; one model failing (e.g. a gated Llama
// without a token) does not stop the others, and the exit code is that of the first failure.
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/command.h"
#include "core/error.h"
#include "hub/download.h"
#include "hub/exit_codes.h"
#include "hub/hub_cache.h"
#include "hub/model_alias.h"

namespace billion::cli {
namespace {

using namespace billion::hub;

struct DownloadArgs {
  std::vector<std::string> models;
  std::string revision = "main";
  std::string token;
  std::string cache_dir;
  std::vector<std::string> includes;
  bool dry_run = false;
  bool quiet = false;
  int jobs = 4;
};

const char* kFooter = R"(Models: tinyllama, llama3.2-1b, stablelm, pythia-1b (the default four), llama2-7b-chat,
smollm2-135m, or any Hub repo id org/name. Files chosen: config, generation config, tokenizer
files, chat template, *.safetensors and their index (never pickle .bin/.pth); --include replaces
that choice with the files matching the globs.

Cache: --cache-dir, else HF_HUB_CACHE, else $HF_HOME/hub (default ~/.cache/huggingface/hub), in
the layout huggingface_hub and transformers use. Token: --token, else HF_TOKEN, else
HUGGING_FACE_HUB_TOKEN, else the file $HF_HOME/token. Also honoured: HF_ENDPOINT, HF_HUB_OFFLINE,
HF_HUB_ETAG_TIMEOUT, HF_HUB_DOWNLOAD_TIMEOUT. Interrupted downloads resume on the next run.

Exit codes: 0 done; 1 other error (bad name, pickle-only repo, I/O); 3 gated model (accept the
licence on the Hub, pass a token); 4 token rejected or lacking permission; 5 repo, revision or
file not found; 6 not enough disk space (nothing written); 7 checksum or size mismatch;
8 network failure or malformed answer from the server; 9 not in the cache while offline.
See docs/DOWNLOAD.md.)";

struct ModelJob {
  std::string name;
  std::string repo_id;
  std::optional<ModelPlan> plan;
  std::optional<Error> error;
};

std::string short_commit(const std::string& c) { return c.substr(0, 10); }

void run_offline(const HubConfig& config, std::vector<ModelJob>& jobs, const DownloadArgs& args) {
  for (auto& job : jobs) {
    if (job.error) continue;
    RepoCache cache(config.cache_dir, job.repo_id);
    if (auto snapshot = cache.find_snapshot(args.revision)) {
      std::string line = args.quiet ? snapshot->string() : job.name + ": in the cache (offline) at " + snapshot->string();
      std::printf("%s\n", line.c_str());
    } else {
      job.error = Error(job.name + " (" + job.repo_id + ", revision " + args.revision +
                            ") is not in the cache and HF_HUB_OFFLINE is set: unset it to download",
                        exit_code::kNotDownloaded);
    }
  }
}

void run_download(const DownloadArgs& args) {
  HubConfig config = hub_config_from_env(args.token, args.cache_dir);
  std::vector<std::string> names = args.models.empty() ? default_download_models() : args.models;
  std::vector<ModelJob> jobs;
  for (const auto& name : names) {
    ModelJob job;
    job.name = name;
    try {
      job.repo_id = to_repo_id(name);
    } catch (const Error& e) {
      job.error = e;
    }
    jobs.push_back(std::move(job));
  }
  DownloadOptions options;
  options.revision = args.revision;
  options.includes = args.includes;
  options.dry_run = args.dry_run;
  options.jobs = args.jobs;
  bool terminal = stdout_is_terminal();
  auto report_error = [&](const ModelJob& job) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", redact(job.error->what(), config).c_str());
  };

  if (config.offline) {
    run_offline(config, jobs, args);
  } else {
    // 1. Plan every model: file lists and what the cache already holds. Nothing is written.
    uint64_t needed = 0;
    for (auto& job : jobs) {
      if (job.error) continue;
      try {
        job.plan = plan_model(config, job.name, job.repo_id, options);
        const ModelPlan& p = *job.plan;
        needed += p.bytes_to_download();
        if (!args.quiet) {
          std::printf("%s (%s @ %s, commit %s): %zu files, %zu already cached, %zu to download (%s)\n", job.name.c_str(),
                      job.repo_id.c_str(), args.revision.c_str(), short_commit(p.commit).c_str(), p.files.size(),
                      p.count(PlannedFile::State::kPresent) + p.count(PlannedFile::State::kLinkOnly),
                      p.count(PlannedFile::State::kDownload), format_bytes(p.bytes_to_download()).c_str());
        }
        if (args.dry_run) {
          for (const auto& f : p.files) {
            const char* state = f.state == PlannedFile::State::kPresent    ? "cached"
                                 : f.state == PlannedFile::State::kLinkOnly ? "cached (link)"
                                 : f.partial                                 ? "partial"
                                                                             : "download";
            std::printf("  %-14s %10s  %s\n", state, format_bytes(f.entry.size).c_str(), f.entry.path.c_str());
          }
        }
      } catch (const Error& e) {
        job.error = Error(redact(e.what(), config), e.exit_code());
        if (jobs.size() > 1) report_error(job);
      }
    }
    // 2. One free-space check for the whole batch, before any byte is written.
    if (args.dry_run) {
      uint64_t free = free_bytes(config.cache_dir);
      std::printf("dry run: %s to download into %s, %s free\n", format_bytes(needed).c_str(), config.cache_dir.string().c_str(),
                  free == UINT64_MAX ? "unknown" : format_bytes(free).c_str());
      check_disk_space(config, needed);
    } else {
      check_disk_space(config, needed);
      // 3. Download.
      for (auto& job : jobs) {
        if (job.error || !job.plan) continue;
        Progress progress(args.quiet ? Progress::Mode::kQuiet : terminal ? Progress::Mode::kTerminal : Progress::Mode::kPlain,
                          stdout);
        try {
          auto snapshot = download_model(config, *job.plan, options, progress);
          progress.finish();
          if (args.quiet) {
            std::printf("%s\n", snapshot.c_str());
          } else {
            std::printf("%s: ready at %s\n", job.name.c_str(), snapshot.c_str());
          }
          std::fflush(stdout);
        } catch (const Error& e) {
          progress.finish();
          job.error = Error(redact(e.what(), config), e.exit_code());
          if (jobs.size() > 1) report_error(job);
        } catch (const std::exception& e) {  // e.g. filesystem_error: cache folder not writable
          progress.finish();
          job.error = Error(redact(job.name + ": " + e.what(), config));
          if (jobs.size() > 1) report_error(job);
        }
      }
    }
  }

  // A single model's error is the command's error; for several, each was printed already.
  std::vector<const ModelJob*> failed;
  for (const auto& job : jobs) {
    if (job.error) failed.push_back(&job);
  }
  if (failed.empty()) return;
  if (jobs.size() == 1) throw *failed.front()->error;
  if (config.offline) {
    for (const auto* job : failed) report_error(*job);
  }
  std::string list;
  for (const auto* job : failed) list += (list.empty() ? "" : ", ") + job->name;
  throw Error(std::to_string(failed.size()) + " of " + std::to_string(jobs.size()) + " models failed: " + list,
              failed.front()->error->exit_code());
}

void setup(CLI::App& app) {
  auto args = std::make_shared<DownloadArgs>();
  auto* sub = app.add_subcommand("download", "Download models from the Hugging Face Hub into the shared cache");
  sub->add_option("MODEL", args->models, "Alias or org/name (default: tinyllama llama3.2-1b stablelm pythia-1b)");
  sub->add_option("--revision", args->revision, "Branch, tag or commit")->capture_default_str();
  sub->add_option("--token", args->token, "Hub access token (else HF_TOKEN / $HF_HOME/token)");
  sub->add_option("--cache-dir", args->cache_dir, "Cache folder (else HF_HUB_CACHE / $HF_HOME/hub)");
  sub->add_option("--include", args->includes, "Only files matching this glob (repeatable), instead of the default choice");
  sub->add_flag("--dry-run", args->dry_run, "Show what would be downloaded and the free space; write nothing");
  sub->add_flag("-q,--quiet", args->quiet, "No progress output; print only the snapshot paths");
  sub->add_option("-j,--jobs", args->jobs, "Files downloaded in parallel")->capture_default_str()->check(CLI::Range(1, 16));
  sub->footer(kFooter);
  sub->callback([args] { run_download(*args); });
}

static billion::cli::RegisterCommand reg(40, setup);

}  // namespace
}  // namespace billion::cli
