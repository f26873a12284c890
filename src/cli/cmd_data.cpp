// `billion data fetch|verify [NAME ...]`: the evaluation data sets (MMLU, HumanEval) that
// `billion bench` fetches on first use, fetched ahead of time (e.g. before going offline) or
// checked file by file against the sha256 manifests compiled into the program.
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "core/error.h"
#include "hub/dataset_fetch.h"
#include "hub/exit_codes.h"
#include "hub/hub_cache.h"

namespace billion::cli {
namespace {

using namespace billion::hub;

struct DataArgs {
  std::vector<std::string> names;
  std::string dir;
  std::string mmlu_url, humaneval_url;
  bool offline = false;
  bool quiet = false;
};

const char* kFooter = R"(Data sets: mmlu (the authors' data.tar from the hendrycks/test README, extracted; the
dev/, val/ and test/ CSVs and README.txt), humaneval (data/HumanEval.jsonl.gz of openai/human-eval).
Folder: --dir, else BILLION_DATA, else $BILLION_HOME/data (default ~/.cache/billion/data). Every
file is checked against the sha256 manifest built into billion before the folder appears.
Mirrors: --mmlu-url/--humaneval-url or BILLION_MMLU_URL/BILLION_HUMANEVAL_URL; a mirror of another
version needs BILLION_MMLU_MANIFEST/BILLION_HUMANEVAL_MANIFEST (a sha256sum file; also what the
tests use). --offline or HF_HUB_OFFLINE=1: never touch the network. Interrupted downloads
resume. Exit codes as `billion download`: 5 not found, 6 disk space, 7 checksum mismatch,
8 network, 9 missing while offline. See docs/DOWNLOAD.md.)";

std::vector<std::string> names_or_all(const std::vector<std::string>& names) {
  if (!names.empty()) return names;
  std::vector<std::string> all;
  for (const auto& s : known_datasets()) all.push_back(s.name);
  return all;
}

std::filesystem::path data_dir(const DataArgs& a) {
  if (!a.dir.empty()) return a.dir;
  if (auto env = env_or_empty("BILLION_DATA"); !env.empty()) return env;
  return default_data_dir();
}

void run_fetch(const DataArgs& a) {
  DataFetchSettings s;
  s.data_dir = data_dir(a);
  s.offline = a.offline;
  if (!a.mmlu_url.empty()) s.urls["mmlu"] = a.mmlu_url;
  if (!a.humaneval_url.empty()) s.urls["humaneval"] = a.humaneval_url;
  s.progress_mode = a.quiet ? Progress::Mode::kQuiet : ::isatty(STDERR_FILENO) ? Progress::Mode::kTerminal : Progress::Mode::kPlain;
  s.out = stderr;
  auto names = names_or_all(a.names);
  for (const auto& n : names) dataset_spec(n);  // an unknown name fails before any download
  ensure_datasets(names, s);
  for (const auto& n : names) std::printf("%s\n", (s.data_dir / n).c_str());
}

void run_verify(const DataArgs& a) {
  std::filesystem::path dir = data_dir(a);
  size_t bad = 0;
  for (const auto& n : names_or_all(a.names)) {
    const DatasetSpec& spec = dataset_spec(n);
    DatasetSource src = dataset_source(spec, "");
    auto problems = check_manifest(dir / n, src.manifest);
    for (const auto& p : problems) std::printf("%s: %s: %s\n", (dir / n).c_str(), p.path.c_str(), p.what.c_str());
    std::printf("%s: %zu of %zu files verified (manifest %s)\n", (dir / n).c_str(), src.manifest.size() - problems.size(),
                src.manifest.size(), src.manifest_origin.c_str());
    bad += problems.size();
  }
  if (bad) throw Error(dir.string() + ": " + std::to_string(bad) + " files missing or not matching their sha256", exit_code::kIntegrity);
}

void setup(CLI::App& app) {
  auto args = std::make_shared<DataArgs>();
  auto* cmd = app.add_subcommand("data", "Fetch or verify the benchmark data sets (MMLU, HumanEval)");
  cmd->require_subcommand(1);
  cmd->footer(kFooter);
  auto* fetch = cmd->add_subcommand("fetch", "Download, extract and verify the data sets that are not there yet");
  fetch->add_option("NAME", args->names, "mmlu, humaneval (default: both)");
  fetch->add_option("--dir", args->dir, "Data folder (else BILLION_DATA, else $BILLION_HOME/data)");
  fetch->add_option("--mmlu-url", args->mmlu_url, "Address of MMLU's data.tar (else BILLION_MMLU_URL, else the authors')");
  fetch->add_option("--humaneval-url", args->humaneval_url, "Address of HumanEval.jsonl.gz (else BILLION_HUMANEVAL_URL, else GitHub)");
  fetch->add_flag("--offline", args->offline, "Never touch the network (as HF_HUB_OFFLINE=1): only check what is there");
  fetch->add_flag("-q,--quiet", args->quiet, "No progress; print only the folders");
  fetch->footer(kFooter);
  fetch->callback([args] { run_fetch(*args); });
  auto* verify = cmd->add_subcommand("verify", "Check every file of the data sets against the built-in sha256 manifests");
  verify->add_option("NAME", args->names, "mmlu, humaneval (default: both)");
  verify->add_option("--dir", args->dir, "Data folder (else BILLION_DATA, else $BILLION_HOME/data)");
  verify->footer(kFooter);
  verify->callback([args] { run_verify(*args); });
}

billion::cli::RegisterCommand registration(45, setup);

}  // namespace
}  // namespace billion::cli
