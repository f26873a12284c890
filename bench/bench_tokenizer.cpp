// Tokenizer encode throughput (MB/s, single-threaded) on the whole MMLU test set, for every
// tokenizer of the target models, side by side with the Python reference libraries (Hugging Face
// `tokenizers` for tokenizer.json, `tiktoken` for rank files) run in the same invocation.
//
//   bench_tokenizer [--shared ../shared] [--python PY] [--gguf SMOLLM2.gguf] [--out FILE.json]
//
// --python names an interpreter that has tokenizers and tiktoken (tools/README.md); without it
// only our numbers are printed. Each measurement is the best of three passes.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/csv.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace billion;

namespace {

struct Entry {
  std::string name, folder, peer_kind, peer_path;
};

std::vector<std::string> mmlu_texts(const std::string& shared) {
  std::vector<std::string> texts;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(shared) / "data/mmlu/test"))
    if (e.path().extension() == ".csv") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files)
    for (const auto& row : read_csv_file(f.string())) {
      if (row.size() < 6) continue;
      texts.push_back(fmt::format("{}\nA. {}\nB. {}\nC. {}\nD. {}\nAnswer:", row[0], row[1], row[2], row[3], row[4]));
    }
  return texts;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int main(int argc, char** argv) {
  std::string shared = "../shared", python, gguf_path, out = "bench-tokenizer.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--shared") shared = argv[i + 1];
    else if (flag == "--python") python = argv[i + 1];
    else if (flag == "--gguf") gguf_path = argv[i + 1];
    else if (flag == "--out") out = argv[i + 1];
    else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  try {
    auto texts = mmlu_texts(shared);
    size_t total_bytes = 0;
    for (const auto& t : texts) total_bytes += t.size();
    std::string models = shared + "/models/";
    std::vector<Entry> entries = {
        {"smollm2-135m", models + "smollm2-135m", "hf", models + "smollm2-135m/tokenizer.json"},
        {"pythia-1b", models + "pythia-1b", "hf", models + "pythia-1b/tokenizer.json"},
        {"tinyllama", models + "tinyllama", "hf", models + "tinyllama/tokenizer.json"},
        {"llama3.2-1b", models + "llama3.2-1b", "tiktoken-llama3", models + "llama3.2-1b/tokenizer.model"},
        {"stablelm", models + "stablelm", "tiktoken-arcade", models + "stablelm/arcade100k.tiktoken"},
    };
    std::map<std::string, nlohmann::json> peer;
    if (!python.empty()) {
      std::string texts_file = (fs::temp_directory_path() / "billion-bench-tokenizer-texts.jsonl").string();
      {
        std::ofstream f(texts_file);
        for (const auto& t : texts) f << nlohmann::json(t).dump() << "\n";
      }
      std::string cmd = python + " " + (fs::path(BILLION_SOURCE_DIR) / "tools/bench_tokenizer_peer.py").string() + " " + texts_file;
      for (const auto& e : entries) cmd += " " + e.name + "=" + e.peer_kind + ":" + e.peer_path;
      FILE* p = popen(cmd.c_str(), "r");
      if (!p) throw Error("cannot run " + python);
      char line[4096];
      while (fgets(line, sizeof line, p)) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded()) peer[j["name"].get<std::string>()] = j;
      }
      if (pclose(p) != 0) std::cerr << "warning: the peer script failed; see its output above\n";
      fs::remove(texts_file);
    }
    nlohmann::json results = nlohmann::json::array();
    std::printf("MMLU test set: %zu texts, %.2f MB\n\n", texts.size(), total_bytes / 1e6);
    std::printf("| tokenizer | ours MB/s | tokens | peer | peer MB/s | ours / peer |\n|---|---|---|---|---|---|\n");
    auto measure = [&](const std::string& name, const Tokenizer& tok) {
      double best = 1e30;
      size_t tokens = 0;
      for (int pass = 0; pass < 3; ++pass) {
        double start = now();
        tokens = 0;
        for (const auto& t : texts) tokens += tok.encode(t, {.add_special = false, .parse_special = false}).size();
        best = std::min(best, now() - start);
      }
      double mbps = total_bytes / 1e6 / best;
      nlohmann::json row{{"tokenizer", name}, {"bytes", total_bytes}, {"tokens", tokens}, {"seconds", best}, {"mb_per_s", mbps}};
      std::string peer_name = "-", peer_rate = "-", ratio = "-";
      if (peer.count(name)) {
        const auto& p = peer[name];
        double peer_mbps = p["bytes"].get<double>() / 1e6 / p["seconds"].get<double>();
        row["peer"] = {{"library", p["library"]}, {"seconds", p["seconds"]}, {"mb_per_s", peer_mbps}, {"tokens", p["tokens"]}};
        row["ratio"] = mbps / peer_mbps;
        peer_name = p["library"].get<std::string>();
        peer_rate = fmt::format("{:.2f}", peer_mbps);
        ratio = fmt::format("{:.2f}x", mbps / peer_mbps);
        if (p["tokens"].get<size_t>() != tokens) row["token_count_differs"] = true;
      }
      std::printf("| %s | %.2f | %zu | %s | %s | %s |\n", name.c_str(), mbps, tokens, peer_name.c_str(), peer_rate.c_str(), ratio.c_str());
      results.push_back(row);
    };
    for (const auto& e : entries) measure(e.name, *load_tokenizer_from_folder(e.folder));
    if (!gguf_path.empty()) {
      GgufFile gguf(gguf_path);
      measure("smollm2-135m (GGUF)", *load_tokenizer_from_gguf(gguf));
    }
    std::ofstream(out) << nlohmann::json{{"benchmark", "tokenizer_encode"}, {"texts", texts.size()}, {"bytes", total_bytes},
                                         {"threads", 1}, {"results", results}}
                              .dump(2)
                       << "\n";
    std::printf("\nwritten %s\n", out.c_str());
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
