// Results file helpers for `billion bench` (see results.h).
#include "eval/results.h"

#include <fmt/format.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "hub/sha256.h"

namespace billion::eval {

nlohmann::json hardware_info(const std::string& device) {
  std::string cpu_model = "unknown";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) cpu_model = line.substr(line.find_first_not_of(' ', colon + 1));
      break;
    }
  }
  double mem_gb = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE) / 1e9;
  struct utsname u{};
  uname(&u);
  return {{"device", device},
          {"gpu_name", device == "cpu" ? "none (CPU run)" : "unknown"},
          {"cpu_model", cpu_model},
          {"cpu_threads", std::thread::hardware_concurrency()},
          {"memory_gb", std::round(mem_gb * 10) / 10},
          {"os", fmt::format("{} {} {}", u.sysname, u.release, u.machine)}};
}

nlohmann::json software_info() {
  return {{"billion_version", BILLION_VERSION},
          {"git_revision", BILLION_GIT_REVISION},
          {"compiler", fmt::format("{} {}", "gcc-compatible", __VERSION__)}};
}

namespace {
std::string format_utc(const char* pattern) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, pattern, &tm);
  return buf;
}
}  // namespace

std::string utc_timestamp() { return format_utc("%Y-%m-%dT%H:%M:%SZ"); }
std::string utc_timestamp_for_file() { return format_utc("%Y%m%d-%H%M%S"); }

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open to hash it");
  hub::Sha256 hash;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), buf.size());
    if (in.gcount() > 0) hash.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return hash.hex_digest();
}

nlohmann::json weights_sha256(const std::string& model_path) {
  namespace fs = std::filesystem;
  nlohmann::json out = nlohmann::json::object();
  if (fs::is_regular_file(model_path)) {
    out[fs::path(model_path).filename().string()] = sha256_file(model_path);
    return out;
  }
  if (fs::is_directory(model_path))
    for (const auto& e : fs::directory_iterator(model_path))
      if (e.path().extension() == ".safetensors" || e.path().extension() == ".gguf")
        out[e.path().filename().string()] = sha256_file(fs::canonical(e.path()).string());
  return out;
}

std::string markdown_table(const nlohmann::json& results) {
  auto cell = [](const nlohmann::json& v, double scale, int decimals, const char* suffix = "") -> std::string {
    if (!v.is_number()) return "—";
    return fmt::format("{:.{}f}{}", v.get<double>() * scale, decimals, suffix);
  };
  std::string t = "| Model | MMLU (%) | HumanEval pass@1 (%) | Decode tok/s | Prefill tok/s | Peak memory (GB) |\n";
  t += "|---|---:|---:|---:|---:|---:|\n";
  for (const auto& [name, m] : results.at("models").items()) {
    std::string speed = cell(m.value("tokens_per_second", nlohmann::json()), 1, 1);
    if (m.contains("speed") && m["speed"].is_object()) speed += fmt::format(" ± {:.1f}", m["speed"].value("decode_tokens_per_second_std", 0.0));
    std::string prefill = m.contains("speed") && m["speed"].is_object() ? cell(m["speed"].value("prefill_tokens_per_second", nlohmann::json()), 1, 1) : "—";
    t += fmt::format("| {} | {} | {} | {} | {} | {} |\n", name, cell(m.value("mmlu_accuracy", nlohmann::json()), 100, 1),
                     cell(m.value("humaneval_pass_rate", nlohmann::json()), 100, 1), speed, prefill,
                     cell(m.value("peak_memory_gb", nlohmann::json()), 1, 2));
  }
  return t;
}

}  // namespace billion::eval
