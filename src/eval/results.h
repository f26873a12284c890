// The results file of `billion bench` (results/<timestamp>.json, explained field by field in
// results/README.md): the seed's format {"timestamp", "hardware", "models": {NAME: {...}}} plus
// what makes a run reproducible (versions, settings, weight hashes, per-subject numbers).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace billion::eval {

// {"device", "gpu_name", "cpu_model", "cpu_threads", "memory_gb", "os"} of this machine.
nlohmann::json hardware_info(const std::string& device);
// {"billion_version", "git_revision", "compiler"}.
nlohmann::json software_info();
// UTC time as "2026-11-26T05:30:00Z" and as a file-name-safe "20261126-053000".
std::string utc_timestamp();
std::string utc_timestamp_for_file();
// Lower-case hex sha256 of a file's contents.
std::string sha256_file(const std::string& path);
// sha256 of the weight files: the .gguf itself, or every *.safetensors of a model folder.
nlohmann::json weights_sha256(const std::string& model_path);
// One row per model: MMLU %, HumanEval pass@1 %, decode tok/s ± std, peak memory GB.
std::string markdown_table(const nlohmann::json& results);

}  // namespace billion::eval
